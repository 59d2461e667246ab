"""Deepgram live streaming speech-to-text, direct (not through Telnyx).

Written against Deepgram's documented streaming API (developers.deepgram.com, "Live Audio"
``GET /v1/listen`` and the feature pages it links):

* ``wss://api.deepgram.com/v1/listen`` with the options as query parameters: ``model``,
  ``language``, ``encoding`` + ``sample_rate`` (raw audio needs both), ``channels``,
  ``interim_results``, ``endpointing`` (ms of silence before ``speech_final``; Deepgram's
  default is 10 ms, or ``false``), ``utterance_end_ms`` (needs interim results),
  ``vad_events`` (``SpeechStarted`` messages), ``punctuate``, ``smart_format``.
* Auth at the handshake: ``Authorization: Token <api key>`` (not Bearer); a refused
  handshake is an HTTP status (401 for the key, 400 for the options).
* Client → server: binary audio frames; text ``{"type": "Finalize"}`` (flush: what was sent
  comes back final, marked ``from_finalize``), ``{"type": "KeepAlive"}`` (no reply; without
  audio or KeepAlive for 10 s the server closes with ``NET-0001``), ``{"type": "CloseStream"}``
  (finish, send a last ``Metadata``, close).
* Server → client: ``Results`` (``channel.alternatives[0].transcript`` / ``confidence``,
  ``is_final``, ``speech_final``, ``from_finalize``, ``start``, ``duration``),
  ``SpeechStarted`` (``timestamp``), ``UtteranceEnd`` (``last_word_end``), ``Metadata``.
  An error mid-stream is a WebSocket close frame: an RFC 6455 code and a reason such as
  ``NET-0001`` or ``DATA-0000``.

The transport (batching, ``Finalize`` waiters, failure and shutdown) is the Telnyx client's
(Telnyx's STT forwards Deepgram's own control messages); only the audio encoding, the
handshake and the message shapes differ. Caller audio goes as μ-law by default: the call's
audio came over PCMU already, so it loses nothing and takes half the bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from engine import _audioop as audioop

from ._http import SessionHolder
from .base import ProviderError, SpeechToText, Transcript
from .telnyx_stt import SttClientStats, TelnyxSttSession, connect_error

log = logging.getLogger(__name__)

PROVIDER = "deepgram-stt"
DEFAULT_URL = "wss://api.deepgram.com/v1/listen"


class DeepgramOptions(BaseModel):
    """``providers.options.deepgram`` (``CALLAGENT_PROVIDERS__OPTIONS__DEEPGRAM__API_KEY`` ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr | None = Field(None, description="A Deepgram API key (required outside local mode).")
    url: str = DEFAULT_URL
    model: str = "nova-3"
    language: str = "en"
    encoding: Literal["mulaw", "linear16"] = Field(
        "mulaw", description="How caller audio is sent: mulaw (half the bytes; the call was PCMU) or linear16.")
    interim_results: bool = True
    endpointing: int | Literal[False] = Field(
        500, description="ms of silence before Deepgram's own speech_final (false: off). The agent finalizes "
                         "on its own end-of-turn; this is the backstop, long enough not to split a sentence.")
    utterance_end_ms: int | None = Field(1000, ge=1000, description="UtteranceEnd after this gap (needs interim "
                                         "results); None: not asked.")
    vad_events: bool = True
    punctuate: bool = True
    smart_format: bool = False
    extra_params: dict[str, str] = Field(default_factory=dict, description="More query parameters; win over the above.")
    batch_ms: int = Field(100, ge=20, le=1000)
    connect_timeout_s: float = Field(5.0, gt=0)
    finalize_timeout_s: float | None = Field(5.0, gt=0)
    close_timeout_s: float = Field(1.0, gt=0)
    keepalive_s: float = Field(4.0, gt=0, lt=10, description="KeepAlive after this long without audio (server: 10 s).")


class DeepgramSpeechToText(SpeechToText):
    """One :class:`DeepgramSttSession` per call; Finalize and interim results are Deepgram's own."""

    can_finalize = True

    def __init__(self, options: DeepgramOptions, *, session: aiohttp.ClientSession | None = None) -> None:
        self.options = options
        self.interim_results = options.interim_results
        self.stats = SttClientStats()
        self._http = SessionHolder(session)

    def query(self, sample_rate: int) -> dict[str, str]:
        o = self.options
        params = {
            "model": o.model, "language": o.language, "encoding": o.encoding, "sample_rate": str(sample_rate),
            "channels": "1", "interim_results": _flag(o.interim_results),
            "endpointing": "false" if o.endpointing is False else str(o.endpointing),
            "vad_events": _flag(o.vad_events), "punctuate": _flag(o.punctuate),
            "smart_format": _flag(o.smart_format),
        }
        if o.utterance_end_ms is not None and o.interim_results:
            params["utterance_end_ms"] = str(o.utterance_end_ms)
        params.update(o.extra_params)
        return params

    async def open(
        self,
        *,
        sample_rate: int,
        on_transcript: Callable[[Transcript], None],
        on_error: Callable[[ProviderError], None],
    ) -> DeepgramSttSession:
        o = self.options
        if o.api_key is None:
            raise ProviderError(PROVIDER, "no API key configured", retryable=False)
        try:
            # (asyncio.timeout, not wait_for: see TelnyxTextToSpeech.open, the same leak)
            async with asyncio.timeout(o.connect_timeout_s):
                ws = await self._http.get().ws_connect(
                    o.url, params=self.query(sample_rate),
                    headers={"Authorization": f"Token {o.api_key.get_secret_value()}"},
                    timeout=aiohttp.ClientWSTimeout(ws_close=o.close_timeout_s), autoping=True,
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise connect_error(PROVIDER, exc) from None
        batch_bytes = sample_rate * 2 * o.batch_ms // 1000
        return DeepgramSttSession(ws, batch_bytes=batch_bytes, on_transcript=on_transcript, on_error=on_error,
                                  finalize_timeout_s=o.finalize_timeout_s, stats=self.stats,
                                  keepalive_s=o.keepalive_s, mulaw=o.encoding == "mulaw")

    async def aclose(self) -> None:
        await self._http.aclose()


class DeepgramSttSession(TelnyxSttSession):
    provider = PROVIDER

    def __init__(self, *args: Any, mulaw: bool = True, **kwargs: Any) -> None:
        self._mulaw = mulaw
        self.speech_started = 0
        self.utterance_ends = 0
        self.request_id: str | None = None
        super().__init__(*args, **kwargs)

    def _encode(self, pcm: bytes) -> bytes:
        return audioop.lin2ulaw(pcm, 2) if self._mulaw else pcm

    def _on_frame(self, data: str) -> None:
        if self._closed:
            return
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("%s: ignoring a frame that is not JSON (%d chars)", PROVIDER, len(data))
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if kind == "Results":
            transcript = _transcript_of(frame)
            if transcript is not None:
                self._deliver(transcript)
        elif kind == "SpeechStarted":
            self.speech_started += 1  # (the engine's own VAD decides turns; counted for diagnosis)
        elif kind == "UtteranceEnd":
            self.utterance_ends += 1
        elif kind == "Metadata":
            request_id = frame.get("request_id")
            self.request_id = request_id if isinstance(request_id, str) else None
        # Errors come as the close frame's code and reason (DATA-0000, NET-0001): see _receive_loop.


def _transcript_of(frame: dict[str, Any]) -> Transcript | None:
    channel = frame.get("channel")
    alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
    if not isinstance(alternatives, list) or not alternatives or not isinstance(alternatives[0], dict):
        return None
    best = alternatives[0]
    text = best.get("transcript")
    if not isinstance(text, str):
        return None
    confidence = best.get("confidence")
    return Transcript(text=text, is_final=bool(frame.get("is_final")), speech_final=bool(frame.get("speech_final")),
                      confidence=float(confidence) if isinstance(confidence, (int, float)) else None)


def _flag(value: bool) -> str:
    return "true" if value else "false"
