"""Telnyx real-time speech-to-text over its WebSocket (docs/telnyx-protocol.md §4.1).

One WebSocket per call. :meth:`TelnyxSttSession.feed` only appends to a buffer; a sender
task, woken when ``batch_ms`` of audio is buffered or a ``Finalize`` is requested, writes
binary frames (so the media hot path never awaits, and the socket sees ~10 frames a
second instead of 50). A receiver task turns server frames into :class:`Transcript`
callbacks; an error frame (in the docs' shape or the SDK's) or a close the client did not
ask for becomes one :class:`ProviderError` via ``on_error``, not retryable when the
request itself was at fault (engine, model, format, rate).

Engines differ (:mod:`.stt_engines`): ``Finalize`` works on Deepgram only, so on the others
:meth:`TelnyxSttSession.finalize` just flushes the buffered audio, and their finals come on
their own segmentation. A ``Finalize`` with no final within ``finalize_timeout_s`` is counted
(:class:`SttClientStats`), never an error: an engine may legitimately have nothing to say.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._http import SessionHolder
from .base import ProviderError, SpeechToText, SttSession, Transcript
from .stt_engines import SttEngine, stt_engine

log = logging.getLogger(__name__)

PROVIDER = "telnyx-stt"
DEFAULT_URL = "wss://api.telnyx.com/v2/speech-to-text/transcription"
_FINALIZE = '{"type":"Finalize"}'
_CLOSE_STREAM = '{"type":"CloseStream"}'
_KEEPALIVE = '{"type":"KeepAlive"}'


class TelnyxSttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    url: str = DEFAULT_URL
    transcription_engine: str = Field(
        "Deepgram", description="Deepgram is the engine with Finalize and interim results (the fast path).")
    model: str | None = Field(None, description="None: the engine's default model (Deepgram: nova-3).")
    language: str = "en"
    interim_results: bool = True
    extra_params: dict[str, str] = Field(
        default_factory=dict, description="More query parameters (endpointing, keywords, ...); win over the above."
    )
    batch_ms: int = Field(100, ge=20, le=1000, description="Audio per binary frame (the last one may be shorter).")
    connect_timeout_s: float = Field(5.0, gt=0)
    finalize_timeout_s: float | None = Field(
        5.0, gt=0, description="A Finalize with no final this long after is counted as unanswered (None: never).")
    close_timeout_s: float = Field(1.0, gt=0, description="Bound on the closing handshake.")


def connect_error(provider: str, exc: BaseException) -> ProviderError:
    """A failed WebSocket handshake as a ProviderError: 4xx (auth, bad parameters) is final."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return ProviderError(provider, f"handshake refused: HTTP {exc.status} {exc.message}",
                             retryable=exc.status >= 500 or exc.status in (408, 429))
    if isinstance(exc, asyncio.TimeoutError):
        return ProviderError(provider, "connect timed out")
    return ProviderError(provider, f"connect failed: {exc.__class__.__name__}: {exc}")


class SttClientStats:
    """Counters over all of a client's sessions, for metrics."""

    __slots__ = ("finalizes_sent", "finalizes_flushed_only", "finalizes_unanswered")

    def __init__(self) -> None:
        self.finalizes_sent = 0
        self.finalizes_flushed_only = 0
        """finalize() on an engine without Finalize: the audio was flushed, nothing was asked."""
        self.finalizes_unanswered = 0
        """A Finalize with no final within ``finalize_timeout_s``."""


class TelnyxSpeechToText(SpeechToText):
    """Opens one :class:`TelnyxSttSession` per call on a shared :class:`aiohttp.ClientSession`."""

    def __init__(self, config: TelnyxSttConfig, *, session: aiohttp.ClientSession | None = None) -> None:
        self.config = config
        self.engine: SttEngine = stt_engine(config.transcription_engine)
        self.can_finalize = self.engine.finalize
        self.interim_results = config.interim_results and self.engine.interim_results
        if not self.can_finalize:  # its own final comes its usual lag after the end of speech
            self.final_wait_s = self.engine.final_wait_s
        self.stats = SttClientStats()
        self._http = SessionHolder(session)

    def query(self, sample_rate: int) -> dict[str, str]:
        config = self.config
        params = {
            "input_format": "linear16",
            "sample_rate": str(sample_rate),
            "transcription_engine": config.transcription_engine,
            "language": config.language,
            "interim_results": "true" if config.interim_results else "false",
        }
        model = config.model or self.engine.default_model
        if model:
            params["model"] = model
        params.update(config.extra_params)
        return params

    async def open(
        self,
        *,
        sample_rate: int,
        on_transcript: Callable[[Transcript], None],
        on_error: Callable[[ProviderError], None],
    ) -> TelnyxSttSession:
        config = self.config
        try:
            # No origin= on purpose: the Telnyx edge refuses handshakes that carry one [3P].
            # (asyncio.timeout, not wait_for: see TelnyxTextToSpeech.open, the same leak)
            async with asyncio.timeout(config.connect_timeout_s):
                ws = await self._http.get().ws_connect(
                    config.url,
                    params=self.query(sample_rate),
                    headers={"Authorization": f"Bearer {config.api_key.get_secret_value()}"},
                    timeout=aiohttp.ClientWSTimeout(ws_close=config.close_timeout_s),
                    autoping=True,
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise connect_error(PROVIDER, exc) from None
        batch_bytes = sample_rate * 2 * config.batch_ms // 1000
        return TelnyxSttSession(ws, batch_bytes=batch_bytes, on_transcript=on_transcript, on_error=on_error,
                                finalize_timeout_s=config.finalize_timeout_s, can_finalize=self.can_finalize,
                                stats=self.stats)

    async def aclose(self) -> None:
        """Close the HTTP session if this object created it (open sessions are not touched)."""
        await self._http.aclose()


class TelnyxSttSession(SttSession):
    provider = PROVIDER

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        batch_bytes: int,
        on_transcript: Callable[[Transcript], None],
        on_error: Callable[[ProviderError], None],
        finalize_timeout_s: float | None = None,
        can_finalize: bool = True,
        stats: SttClientStats | None = None,
        keepalive_s: float | None = None,
    ) -> None:
        self._ws = ws
        self._keepalive_s = keepalive_s
        self._can_finalize = can_finalize
        self.stats = stats or SttClientStats()
        self._batch_bytes = max(2, batch_bytes)
        self._on_transcript = on_transcript
        self._on_error = on_error
        self._finalize_timeout_s = finalize_timeout_s
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._wake = asyncio.Event()
        self._finalize_waiters: list[asyncio.Future[None]] = []
        self._deadline: asyncio.TimerHandle | None = None
        self._closed = False  # aclose() called: no more callbacks
        self._failed = False  # an error was reported: no more audio, no second error
        self._sent = 0
        self._sender = self._loop.create_task(self._send_loop())
        self._receiver = self._loop.create_task(self._receive_loop())

    @property
    def sent_pcm_bytes(self) -> int:
        return self._sent

    # -- hot path -------------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        if self._closed or self._failed:
            return
        buffer = self._buffer
        buffer += pcm
        if len(buffer) >= self._batch_bytes:
            self._wake.set()

    async def finalize(self) -> None:
        """Flush the buffered audio and, where the engine supports it, send ``Finalize``."""
        if self._closed or self._failed:
            return
        waiter = self._loop.create_future()
        self._finalize_waiters.append(waiter)
        self._wake.set()
        await waiter  # resolved once Finalize is written, or when the session fails

    # -- tasks ----------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                if self._keepalive_s is None:
                    await self._wake.wait()
                else:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._keepalive_s)
                    except TimeoutError:  # no audio for a while: tell the server we are still here
                        await ws.send_str(_KEEPALIVE)
                        continue
                self._wake.clear()
                # Take the waiters first: a finalize() arriving during the awaits below gets
                # its own flush and Finalize on the next pass, so none skips audio fed before it.
                waiters, self._finalize_waiters = self._finalize_waiters, []
                if self._buffer and (waiters or len(self._buffer) >= self._batch_bytes):
                    pcm = bytes(self._buffer)
                    self._buffer.clear()
                    await ws.send_bytes(self._encode(pcm))
                    self._sent += len(pcm)
                if waiters and not self._can_finalize:
                    self.stats.finalizes_flushed_only += 1  # the engine would ignore it
                elif waiters:
                    await ws.send_str(_FINALIZE)
                    self.stats.finalizes_sent += 1
                    if self._finalize_timeout_s is not None and self._deadline is None:
                        self._deadline = self._loop.call_later(self._finalize_timeout_s, self._final_overdue)
                _resolve(waiters)
        except (aiohttp.ClientError, ConnectionError) as exc:
            self._fail(ProviderError(self.provider, f"send failed: {exc.__class__.__name__}: {exc}"))
        finally:
            _resolve(self._finalize_waiters)

    def _encode(self, pcm: bytes) -> bytes:
        """The audio as the stream's encoding wants it (here: PCM16 as fed)."""
        return pcm

    async def _receive_loop(self) -> None:
        ws = self._ws
        reason = ""
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                self._on_frame(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                if msg.type is aiohttp.WSMsgType.CLOSE and isinstance(msg.extra, str):
                    reason = " ".join(msg.extra.split())[:200]  # (Deepgram: "NET-0001 ...")
                break
        if not self._closed:
            said = f": {reason}" if reason else ""
            self._fail(ProviderError(self.provider, f"connection closed by the server (code {ws.close_code}{said})"))

    def _on_frame(self, data: str) -> None:
        if self._closed:
            return
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("%s: ignoring a frame that is not JSON (%d chars)", self.provider, len(data))
            return
        if not isinstance(frame, dict):
            return
        if frame.get("errors") or frame.get("type") == "error" or isinstance(frame.get("error"), str):
            self._fail(_error_from(frame))
            return
        text = frame.get("transcript")
        if not isinstance(text, str):
            return  # metadata, utterance_end and other frames we do not use
        self._deliver(Transcript(
            text=text,
            is_final=bool(frame.get("is_final")),
            speech_final=bool(frame.get("speech_final", False)),
            confidence=frame.get("confidence"),
        ))

    def _deliver(self, transcript: Transcript) -> None:
        if transcript.is_final and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        try:
            self._on_transcript(transcript)
        except Exception:
            log.exception("%s: on_transcript raised", self.provider)

    def _final_overdue(self) -> None:
        # Not an error: an engine may send nothing for a Finalize when nothing new was said, and
        # a recogniser that is merely slow still delivers. The agent bounds its own wait.
        self._deadline = None
        self.stats.finalizes_unanswered += 1
        log.debug("%s: no final within %s s of a Finalize", self.provider, self._finalize_timeout_s)

    def _fail(self, error: ProviderError) -> None:
        if self._failed or self._closed:
            return
        self._failed = True
        self._buffer.clear()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        _resolve(self._finalize_waiters)
        try:
            self._on_error(error)
        except Exception:
            log.exception("%s: on_error raised", self.provider)

    # -- shutdown -------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._sender.cancel()
        await asyncio.gather(self._sender, return_exceptions=True)
        ws = self._ws
        if not ws.closed:
            try:
                if not self._failed:
                    await ws.send_str(_CLOSE_STREAM)
                # Wakes the receiver with CLOSING (it exits quietly: _closed is set), then
                # completes the closing handshake, bounded by ClientWSTimeout.ws_close.
                await ws.close()
            except (aiohttp.ClientError, ConnectionError):
                pass
        self._receiver.cancel()
        await asyncio.gather(self._receiver, return_exceptions=True)


def _resolve(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


# The documented parameter errors (40001-40007) name what was wrong: the input_format, the
# sample_rate, the engine or its model. Retrying the same request fails the same way.
_REQUEST_FAULT = re.compile(r"\b4\d{4}\b|input_format|format|sample_rate|sample rate|engine|model|language",
                            re.IGNORECASE)
_SERVER_CODE = re.compile(r"\b5\d{4}\b")


def _error_from(frame: dict[str, object]) -> ProviderError:
    """Both shapes of an error frame: the docs' ``{"errors": [{code, title, detail}]}`` and the
    SDK's ``{"type": "error", "error": str}``. The second has no code, so its message decides:
    one naming a request parameter (as every documented 4xxxx error does) is not retryable."""
    errors = frame.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first.get("code", ""))
        parts = [str(p) for p in (code, first.get("title"), first.get("detail")) if p]
        message = " - ".join(parts)
        retryable = not code.startswith("4")
    else:
        error = frame.get("error")
        message = error if isinstance(error, str) else ""
        retryable = bool(_SERVER_CODE.search(message)) or not _REQUEST_FAULT.search(message)
    # The server's words, capped and on one line: an error message is logged.
    message = " ".join(message.split())[:300] or "unspecified"
    return ProviderError(PROVIDER, f"error frame: {message}", retryable=retryable)
