"""The call's speech-to-text stream: opened (once more on failure), fed the caller's audio
(buffered while it opens), reopened after a retryable error.

A non-retryable error (a bad engine, model or format: the same request would fail again), a
third error, or a stream that cannot be opened twice in a row is fatal to the call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from ..providers.base import ProviderError, SpeechToText, SttSession, Transcript, provider_of

EARLY_AUDIO_LIMIT = 16000 * 2 * 5
"""Caller audio kept while the stream opens (5 s)."""


class Recogniser:
    def __init__(
        self, stt: SpeechToText, *, errors: list[str], spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
        on_transcript: Callable[[Transcript], None], on_ready: Callable[[bool], None],
        on_fatal: Callable[[str], None], on_provider_error: Callable[[str], None] = lambda provider: None,
        close_later: Callable[[Awaitable[Any]], None] | None = None,
    ) -> None:
        self.stt = stt
        self.errors = errors
        self.spawn = spawn
        self.close_later = close_later or spawn
        """Closes a failed session: not cancelled with the call's other tasks (CallTasks.close_later)."""
        self.on_transcript = on_transcript
        self.on_ready = on_ready
        self.on_fatal = on_fatal
        self.on_provider_error = on_provider_error
        self.session: SttSession | None = None
        self.sample_rate = 8000
        self.deadline_s = 2.0
        self.closed = False
        self._fed = 0
        """Caller audio fed to the current session."""
        self._past_sessions_bytes = 0
        self._early_audio = bytearray()

    @property
    def sent_bytes(self) -> int:
        """Caller audio sent to speech-to-text (the call's STT usage): per session, what it wrote
        to the provider where it tracks that, else what it was fed."""
        return self._past_sessions_bytes + self._session_bytes(self.session)

    def _session_bytes(self, session: SttSession | None) -> int:
        if session is None:
            return 0
        return session.sent_pcm_bytes if session.sent_pcm_bytes is not None else self._fed

    def _retire(self, session: SttSession | None) -> None:
        self._past_sessions_bytes += self._session_bytes(session)
        self._fed = 0

    async def open(self, sample_rate: int | None = None, deadline_s: float | None = None) -> None:
        self.sample_rate = sample_rate or self.sample_rate
        self.deadline_s = deadline_s or self.deadline_s
        for attempt in range(2):
            try:
                # (in this task, not wait_for's: a cancel reaches the client's open(), which
                # closes what it opened, rather than dropping a session it returns late)
                async with asyncio.timeout(self.deadline_s):
                    self.session = await self.stt.open(
                        sample_rate=self.sample_rate, on_transcript=self.on_transcript, on_error=self._on_error,
                    )
            except (ProviderError, TimeoutError, aiohttp.ClientError) as exc:
                self.errors.append(f"stt open: {exc}")
                self.on_provider_error(provider_of(exc, "stt"))
                if attempt == 0:
                    continue
                self.on_fatal("speech recognition unavailable")
                return
            self.on_ready(True)
            if self._early_audio:
                self._fed += len(self._early_audio)
                self.session.feed(bytes(self._early_audio))
                self._early_audio.clear()
            return

    def feed(self, pcm: bytes) -> None:
        session = self.session
        if session is not None:
            self._fed += len(pcm)
            session.feed(pcm)
        elif len(self._early_audio) < EARLY_AUDIO_LIMIT:
            self._early_audio += pcm

    def finalize(self) -> None:
        if self.session is not None:
            self.spawn(self.session.finalize())

    def _on_error(self, error: ProviderError) -> None:
        self.errors.append(f"stt: {error}")
        self.on_provider_error(error.provider)
        if self.closed:
            return
        session, self.session = self.session, None
        self._retire(session)
        self.on_ready(False)
        if session is not None:
            self.close_later(session.aclose())
        if not error.retryable or sum(e.startswith("stt") for e in self.errors) > 2:
            self.on_fatal("speech recognition failed")
        else:
            self.spawn(self.open())

    async def aclose(self) -> None:
        self.closed = True
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.aclose()
