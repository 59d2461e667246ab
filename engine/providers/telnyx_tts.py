"""Telnyx text-to-speech over its WebSocket (protocol notes §4.2).

One WebSocket per agent reply: handshake ``{"text":" "}``, then ``{"text": ...}`` as the
LLM produces it (``"flush": true`` to speak what is buffered now), ``{"text":""}`` at the
end; audio comes back as base64 ``linear16`` at the requested rate. The server's final
frame (or its clean close) ends the iteration.

Barge-in closes the socket rather than sending ``{"force": true}``: ``force`` restarts
the server's worker so a connection can be reused, but each reply has its own connection
here, and closing stops synthesis just as fast without another round trip.

Providers that ignore ``audio_format`` (KokoroTTS sends MP3 [3P]) are caught on the first
audio bytes and reported with the voices that do stream raw PCM: playing MP3 bytes as
PCM would be loud noise, and the default install decodes no MP3.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import struct

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._http import SessionHolder
from .base import AudioChunk, ProviderError, TextToSpeech, TtsStream
from .telnyx_stt import connect_error
from .voices import ALIASES

PROVIDER = "telnyx-tts"
DEFAULT_URL = "wss://api.telnyx.com/v2/text-to-speech/speech"
_HANDSHAKE = '{"text":" "}'
_END = '{"text":""}'
PCM_VOICES = "Telnyx.Natural.<voice> or Telnyx.NaturalHD.<voice> (e.g. Telnyx.NaturalHD.astra)"


class TelnyxTtsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    url: str = DEFAULT_URL
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

    async def open(self, *, voice: str, sample_rate: int) -> TelnyxTtsStream:
        config = self.config
        voice = ALIASES.get(voice, voice)  # natural / natural_hd
        params = {"voice": voice, "audio_format": "linear16", "sample_rate": str(sample_rate)}
        params.update(config.extra_params)
        try:
            ws = await asyncio.wait_for(
                self._http.get().ws_connect(
                    config.url,
                    params=params,
                    headers={"Authorization": f"Bearer {config.api_key.get_secret_value()}"},
                    timeout=aiohttp.ClientWSTimeout(ws_close=config.close_timeout_s),
                ),
                config.connect_timeout_s,
            )
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise connect_error(PROVIDER, exc) from None
        stream = TelnyxTtsStream(ws, voice=voice, sample_rate=sample_rate, receive_timeout_s=config.receive_timeout_s)
        await stream._send(_HANDSHAKE)
        return stream

    async def aclose(self) -> None:
        await self._http.aclose()


class TelnyxTtsStream(TtsStream):
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, voice: str, sample_rate: int,
                 receive_timeout_s: float) -> None:
        self.sample_rate = sample_rate
        self.voice = voice
        self._ws = ws
        self._receive_timeout_s = receive_timeout_s
        self._closed = False
        self._done = False
        self._checked = False  # first audio bytes inspected for a container header
        self._odd = b""  # a sample split across frames
        self._pending_text: str | None = None

    async def send_text(self, text: str, *, flush: bool = False) -> None:
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
            except asyncio.TimeoutError:
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
                pcm = base64.b64decode(audio)
            except (binascii.Error, ValueError):
                raise ProviderError(PROVIDER, "audio frame is not valid base64") from None
            pcm = self._check_format(pcm)
            if self._odd:
                pcm = self._odd + pcm
            cut = len(pcm) & ~1
            pcm, self._odd = pcm[:cut], pcm[cut:]
            if pcm:
                chunk = AudioChunk(pcm, self._pending_text)
                self._pending_text = None
        if frame.get("isFinal"):
            self._done = True
        return chunk

    def _check_format(self, data: bytes) -> bytes:
        if self._checked:
            return data
        self._checked = True
        container = sniff_container(data)
        if container is None:
            return data
        if container == "WAV":
            pcm = _wav_pcm16(data, self.sample_rate)
            if pcm is not None:
                return pcm
        self._done = True
        raise ProviderError(
            PROVIDER,
            f"voice {self.voice!r} sent {container} audio instead of linear16 at {self.sample_rate} Hz; "
            f"this engine plays raw PCM only (no MP3 decoding in the default install). "
            f"Use a voice that streams linear16: {PCM_VOICES}; KokoroTTS voices always send MP3.",
            retryable=False,
        )

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


def sniff_container(data: bytes) -> str | None:
    """'MP3', 'WAV' or 'Ogg' when ``data`` starts like one; None for (presumably) raw PCM."""
    if data.startswith(b"ID3"):
        return "MP3"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "WAV"
    if data.startswith(b"OggS"):
        return "Ogg"
    if len(data) >= 4 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync. Raw PCM can start with 0xFF 0xEx too (a small negative
        # sample), so also require layer III, a real bitrate and a real sample-rate index.
        layer = (data[1] >> 1) & 0b11
        bitrate = data[2] >> 4
        rate_index = (data[2] >> 2) & 0b11
        if layer == 0b01 and bitrate not in (0, 0xF) and rate_index != 0b11 and (data[1] >> 3) & 0b11 != 0b01:
            return "MP3"
    return None


def _wav_pcm16(data: bytes, rate: int) -> bytes | None:
    """The samples of a PCM16 mono WAV at ``rate`` (header stripped), else None."""
    pos = 12
    fmt = None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt " and size >= 16:
            fmt = struct.unpack_from("<HHIIHH", data, pos + 8)
        elif chunk == b"data":
            if fmt is None or fmt[0] != 1 or fmt[1] != 1 or fmt[2] != rate or fmt[5] != 16:
                return None
            return data[pos + 8:]
        pos += 8 + size + (size & 1)
    return None
