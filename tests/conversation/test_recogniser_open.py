"""The recogniser closes a speech-to-text session its provider's open() returns after the
recogniser was cancelled (the call ended while it opened): the session is never dropped unclosed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engine.conversation.recogniser import Recogniser
from engine.providers.base import ProviderError, SpeechToText, SttSession, Transcript


class Session(SttSession):
    def __init__(self) -> None:
        self.closed = False

    def feed(self, pcm: bytes) -> None:
        pass

    async def finalize(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True


class SlowToCancel(SpeechToText):
    """A plugin whose open() finishes its handshake even when cancelled."""

    def __init__(self) -> None:
        self.sessions: list[Session] = []

    async def open(self, *, sample_rate: int, on_transcript: Callable[[Transcript], None],
                   on_error: Callable[[ProviderError], None]) -> SttSession:
        self.sessions.append(Session())
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # the handshake's end
        return self.sessions[-1]


async def test_a_session_opened_as_the_call_ends_is_closed():
    stt = SlowToCancel()
    tasks: list[asyncio.Task[Any]] = []

    def spawn(coro: Any) -> asyncio.Task[Any]:
        tasks.append(asyncio.ensure_future(coro))
        return tasks[-1]

    recogniser = Recogniser(stt, errors=[], spawn=spawn, on_transcript=lambda t: None,
                            on_ready=lambda ready: None, on_fatal=lambda reason: None)
    opening = spawn(recogniser.open())
    await asyncio.sleep(0.01)
    assert stt.sessions and recogniser.session is None  # opening
    opening.cancel()  # the call's end: its tasks cancelled, then the recogniser closed
    await asyncio.gather(*tasks, return_exceptions=True)
    await recogniser.aclose()
    assert [session.closed for session in stt.sessions] == [True]
