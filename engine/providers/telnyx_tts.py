"""Telnyx text-to-speech over its WebSocket (docs/telnyx-protocol.md §4.2).

One WebSocket per agent reply: handshake ``{"text":" "}``, then ``{"text": ...}`` as the
LLM produces it (``"flush": true`` to speak what is buffered now), ``{"text":""}`` at the
end; audio comes back base64-encoded. The server's final frame (or its clean close) ends
the iteration.

Formats: Telnyx's voice pages document ``audio_format=linear16`` with ``sample_rate``; its
SDK knows ``pcm``, ``wav`` and ``mp3`` and no rate. ``audio_format`` picks what is asked;
what arrives is checked whatever was asked (:class:`~.tts_audio.IncomingAudio`): a WAV
header's rate, an MP3 stream (decoded), or raw PCM, taken at the asked rate, or at
``pcm_rate`` when the request could name none, and resampled to the rate the call needs.

Barge-in closes the socket rather than sending ``{"force": true}``: ``force`` restarts
the server's worker so a connection can be reused, but each reply has its own connection
here, and closing stops synthesis just as fast without another round trip.

Providers that ignore ``audio_format`` (KokoroTTS sends MP3 [3P]) are decoded too.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
from typing import Literal

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._http import SessionHolder
from .base import AudioChunk, ProviderError, TextToSpeech, TtsStream
from .telnyx_stt import connect_error
from .tts_audio import IncomingAudio
from .voices import ALIASES

PROVIDER = "telnyx-tts"
DEFAULT_URL = "wss://api.telnyx.com/v2/text-to-speech/speech"
_HANDSHAKE = '{"text":" "}'
_END = '{"text":""}'


class TelnyxTtsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    url: str = DEFAULT_URL
    audio_format: Literal["linear16", "pcm", "wav", "mp3"] = Field(
        "linear16", description="What to ask for: linear16 (+ sample_rate) as the voices' pages document, or "
        "pcm/wav/mp3 as the SDK lists them (no sample_rate). Whatever arrives is checked and converted.")
    pcm_rate: int = Field(
        24000, ge=8000, le=96000,
        description="The rate of raw PCM when the request could not name one (audio_format=pcm): 24 kHz "
        "is what the SDK documents for Telnyx's PCM output.")
    send_flush: bool = Field(
        True, description='Send "flush": true to speak a piece at once. Telnyx\'s TTS messages page documents '
        "it; the SDK's client event (text, force, voice_settings) lacks it. A service that ignores it speaks "
        "the piece at its next sentence end or at the end of input: later, never lost.")
    extra_params: dict[str, str] = Field(
        default_factory=dict, description="More query parameters (language, disable_cache, ...)."
    )
    connect_timeout_s: float = Field(5.0, gt=0)
    receive_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait for the next server frame while iterating (a stalled provider)."
    )
    close_timeout_s: float = Field(0.5, gt=0, description="Bound on the closing handshake (barge-in).")


class TelnyxTextToSpeech(TextToSpeech):
    def __init__(self, config: TelnyxTtsConfig, *, session: aiohttp.ClientSession | None = None) -> None:
        self.config = config
        self._http = SessionHolder(session)

    @property
    def pieces_alone(self) -> bool:
        return self.config.send_flush  # without the flush, a piece runs on into the next words

    def query(self, voice: str, sample_rate: int) -> dict[str, str]:
        config = self.config
        params = {"voice": ALIASES.get(voice, voice), "audio_format": config.audio_format}  # natural / natural_hd
        if config.audio_format == "linear16":  # the docs' sample_rate goes with the docs' format
            params["sample_rate"] = str(sample_rate)
        params.update(config.extra_params)
        return params

    async def open(self, *, voice: str, sample_rate: int) -> TelnyxTtsStream:
        config = self.config
        params = self.query(voice, sample_rate)
        voice = params["voice"]
        # Raw PCM carries no rate: the one asked for, else the documented default.
        raw_rate = int(params["sample_rate"]) if params.get("sample_rate", "").isdigit() else config.pcm_rate
        try:
            # asyncio.timeout, not wait_for: on 3.11 a wait_for cancelled as the connect completes
            # returns the socket and swallows the cancel, so open() finishes for a caller that is
            # gone, and the socket is never closed ("Unclosed connection"). In this task, a cancel
            # reaches ws_connect itself, which closes what it opened.
            async with asyncio.timeout(config.connect_timeout_s):
                ws = await self._http.get().ws_connect(
                    config.url,
                    params=params,
                    headers={"Authorization": f"Bearer {config.api_key.get_secret_value()}"},
                    timeout=aiohttp.ClientWSTimeout(ws_close=config.close_timeout_s),
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise connect_error(PROVIDER, exc) from None
        stream = TelnyxTtsStream(ws, voice=voice, sample_rate=sample_rate, receive_timeout_s=config.receive_timeout_s,
                                 raw_rate=raw_rate, send_flush=config.send_flush)
        try:
            await stream._send(_HANDSHAKE)
        except BaseException:  # (cancelled too) the socket is ours until it is returned: close it
            with contextlib.suppress(Exception):
                await ws.close()
            raise
        return stream

    async def aclose(self) -> None:
        await self._http.aclose()


class TelnyxTtsStream(TtsStream):
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, voice: str, sample_rate: int,
                 receive_timeout_s: float, raw_rate: int | None = None, send_flush: bool = True) -> None:
        self.sample_rate = sample_rate
        self.voice = voice
        self._ws = ws
        self._receive_timeout_s = receive_timeout_s
        self._closed = False
        self._done = False
        self._audio = IncomingAudio(rate=sample_rate, raw_rate=raw_rate or sample_rate, provider=PROVIDER,
                                    voice=voice)
        self._pending_text: str | None = None
        self._send_flush = send_flush

    async def send_text(self, text: str, *, flush: bool = False) -> None:
        flush = flush and self._send_flush
        if not text:
            if not flush:
                return
            text = " "  # {"text": ""} would mean end of input
        await self._send(orjson.dumps({"text": text, "flush": True} if flush else {"text": text}).decode())

    async def end(self) -> None:
        await self._send(_END)

    async def _send(self, frame: str) -> None:
        if self._closed or self._done:
            raise ProviderError(PROVIDER, "stream is closed", retryable=False)
        try:
            await self._ws.send_str(frame)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise ProviderError(PROVIDER, f"send failed: {exc.__class__.__name__}: {exc}") from None

    def __aiter__(self) -> TelnyxTtsStream:
        return self

    async def __anext__(self) -> AudioChunk:
        while True:
            if self._closed or self._done:
                raise StopAsyncIteration
            try:
                msg = await self._ws.receive(timeout=self._receive_timeout_s)
            except TimeoutError:
                await self._finish()
                raise ProviderError(PROVIDER, f"no audio for {self._receive_timeout_s} s") from None
            if msg.type is aiohttp.WSMsgType.TEXT:
                chunk = self._on_frame(msg.data)
                if chunk is not None:
                    return chunk
                if self._done:
                    await self._finish()
                    raise StopAsyncIteration
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                if self._closed:
                    raise StopAsyncIteration
                self._done = True
                code = self._ws.close_code
                if code in (aiohttp.WSCloseCode.OK, aiohttp.WSCloseCode.GOING_AWAY):
                    raise StopAsyncIteration  # the server's clean close ends the reply
                cause = f": {msg.data!r}" if msg.type is aiohttp.WSMsgType.ERROR else ""
                raise ProviderError(PROVIDER, f"connection lost mid-stream (code {code}{cause})")

    def _on_frame(self, data: str) -> AudioChunk | None:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(frame, dict):
            return None
        if frame.get("error") or frame.get("type") == "error":
            self._done = True
            raise ProviderError(PROVIDER, f"error frame: {frame.get('error') or 'unspecified'}")
        text = frame.get("text")
        if text:
            # Streamed voices put the text in its own frame, before the audio it aligns with.
            self._pending_text = text
        audio = frame.get("audio")
        chunk = None
        if audio:
            try:
                # (base64.b64decode without its Python wrapper: the same lenient decoding, half the CPU)
                pcm = binascii.a2b_base64(audio)
            except (binascii.Error, ValueError):
                raise ProviderError(PROVIDER, "audio frame is not valid base64") from None
            try:
                pcm = self._audio.feed(pcm)
            except ProviderError:
                self._done = True
                raise
            if pcm:
                chunk = AudioChunk(pcm, self._pending_text)
                self._pending_text = None
        if frame.get("isFinal"):
            self._done = True
        return chunk

    async def _finish(self) -> None:
        self._done = True
        if not self._ws.closed:
            try:
                await self._ws.close()
            except (aiohttp.ClientError, ConnectionError):
                pass

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._finish()
