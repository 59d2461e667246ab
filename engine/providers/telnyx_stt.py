"""Telnyx real-time speech-to-text over its WebSocket (protocol notes §4.1).

One WebSocket per call. :meth:`TelnyxSttSession.feed` only appends to a buffer; a sender
task, woken when ``batch_ms`` of audio is buffered or a ``Finalize`` is requested, writes
binary frames (so the media hot path never awaits, and the socket sees ~10 frames a
second instead of 50). A receiver task turns server frames into :class:`Transcript`
callbacks; an error frame, a close the client did not ask for, or no final within
``finalize_timeout_s`` of a ``Finalize`` becomes one :class:`ProviderError` via
``on_error``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._http import SessionHolder
from .base import ProviderError, SpeechToText, SttSession, Transcript

log = logging.getLogger(__name__)

PROVIDER = "telnyx-stt"
DEFAULT_URL = "wss://api.telnyx.com/v2/speech-to-text/transcription"
_FINALIZE = '{"type":"Finalize"}'
_CLOSE_STREAM = '{"type":"CloseStream"}'


class TelnyxSttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    url: str = DEFAULT_URL
    transcription_engine: str = "Telnyx"
    model: str | None = None
    language: str = "en"
    interim_results: bool = True
    extra_params: dict[str, str] = Field(
        default_factory=dict, description="More query parameters (endpointing, keywords, ...); win over the above."
    )
    batch_ms: int = Field(100, ge=20, le=1000, description="Audio per binary frame (the last one may be shorter).")
    connect_timeout_s: float = Field(5.0, gt=0)
    finalize_timeout_s: float | None = Field(
        5.0, gt=0, description="No final transcript this long after a Finalize is an error (None: wait forever)."
    )
    close_timeout_s: float = Field(1.0, gt=0, description="Bound on the closing handshake.")


def connect_error(provider: str, exc: BaseException) -> ProviderError:
    """A failed WebSocket handshake as a ProviderError: 4xx (auth, bad parameters) is final."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return ProviderError(provider, f"handshake refused: HTTP {exc.status} {exc.message}",
                             retryable=exc.status >= 500 or exc.status in (408, 429))
    if isinstance(exc, asyncio.TimeoutError):
        return ProviderError(provider, "connect timed out")
    return ProviderError(provider, f"connect failed: {exc.__class__.__name__}: {exc}")


class TelnyxSpeechToText(SpeechToText):
    """Opens one :class:`TelnyxSttSession` per call on a shared :class:`aiohttp.ClientSession`."""

    def __init__(self, config: TelnyxSttConfig, *, session: aiohttp.ClientSession | None = None) -> None:
        self.config = config
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
        if config.model:
            params["model"] = config.model
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
            ws = await asyncio.wait_for(
                self._http.get().ws_connect(
                    config.url,
                    params=self.query(sample_rate),
                    headers={"Authorization": f"Bearer {config.api_key.get_secret_value()}"},
                    timeout=aiohttp.ClientWSTimeout(ws_close=config.close_timeout_s),
                    autoping=True,
                ),
                config.connect_timeout_s,
            )
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise connect_error(PROVIDER, exc) from None
        batch_bytes = sample_rate * 2 * config.batch_ms // 1000
        return TelnyxSttSession(ws, batch_bytes=batch_bytes, on_transcript=on_transcript, on_error=on_error,
                                finalize_timeout_s=config.finalize_timeout_s)

    async def aclose(self) -> None:
        """Close the HTTP session if this object created it (open sessions are not touched)."""
        await self._http.aclose()


class TelnyxSttSession(SttSession):
    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        batch_bytes: int,
        on_transcript: Callable[[Transcript], None],
        on_error: Callable[[ProviderError], None],
        finalize_timeout_s: float | None = None,
    ) -> None:
        self._ws = ws
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
        self._sender = self._loop.create_task(self._send_loop())
        self._receiver = self._loop.create_task(self._receive_loop())

    # -- hot path -------------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        if self._closed or self._failed:
            return
        buffer = self._buffer
        buffer += pcm
        if len(buffer) >= self._batch_bytes:
            self._wake.set()

    async def finalize(self) -> None:
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
                await self._wake.wait()
                self._wake.clear()
                # Take the waiters first: a finalize() arriving during the awaits below gets
                # its own flush and Finalize on the next pass, so none skips audio fed before it.
                waiters, self._finalize_waiters = self._finalize_waiters, []
                if self._buffer and (waiters or len(self._buffer) >= self._batch_bytes):
                    chunk = bytes(self._buffer)
                    self._buffer.clear()
                    await ws.send_bytes(chunk)
                if waiters:
                    await ws.send_str(_FINALIZE)
                    if self._finalize_timeout_s is not None and self._deadline is None:
                        self._deadline = self._loop.call_later(self._finalize_timeout_s, self._final_overdue)
                    _resolve(waiters)
        except (aiohttp.ClientError, ConnectionError) as exc:
            self._fail(ProviderError(PROVIDER, f"send failed: {exc.__class__.__name__}: {exc}"))
        finally:
            _resolve(self._finalize_waiters)

    async def _receive_loop(self) -> None:
        ws = self._ws
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                self._on_frame(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
        if not self._closed:
            self._fail(ProviderError(PROVIDER, f"connection closed by the server (code {ws.close_code})"))

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
        errors = frame.get("errors")
        if errors or frame.get("type") == "error":
            self._fail(_error_from(errors))
            return
        text = frame.get("transcript")
        if not isinstance(text, str):
            return  # metadata, utterance_end and other frames we do not use
        transcript = Transcript(
            text=text,
            is_final=bool(frame.get("is_final")),
            speech_final=bool(frame.get("speech_final", False)),
            confidence=frame.get("confidence"),
        )
        if transcript.is_final and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        try:
            self._on_transcript(transcript)
        except Exception:
            log.exception("%s: on_transcript raised", PROVIDER)

    def _final_overdue(self) -> None:
        self._deadline = None
        self._fail(ProviderError(PROVIDER, f"no final transcript within {self._finalize_timeout_s} s of Finalize"))

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
            log.exception("%s: on_error raised", PROVIDER)

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


def _error_from(errors: object) -> ProviderError:
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("code", ""))
    parts = [p for p in (code, first.get("title"), first.get("detail")) if p]
    # 4xxxx are the request's fault (format, rate, engine): retrying the same request fails again.
    return ProviderError(PROVIDER, "error frame: " + (" - ".join(map(str, parts)) or "unspecified"),
                         retryable=not code.startswith("4"))
