"""Every TTS socket a reply opens is closed, however the reply ends while it opens (issue 13's
"Unclosed connection" ERROR lines). The real Telnyx TTS client against its emulator, over a real
socket; the cut lands at the one loop step where the socket exists and nobody holds it yet."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import aiohttp
from pydantic import SecretStr

from engine.conversation.reply import Reply
from engine.conversation.tasks import CallTasks
from engine.providers.base import TtsStream
from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig
from tests.conversation.test_reply_accounting import Host, Llm, Stream, Tts
from tests.fixtures.sockets import Sockets, unclosed_reports


def _call(host: Host) -> CallTasks:
    tasks = CallTasks()
    host.spawn = tasks.spawn  # type: ignore[method-assign]
    host.close_later = tasks.close_later  # type: ignore[method-assign]
    return tasks


async def _reply_cut_while_opening(emu: Any, cut: Callable[[Reply, CallTasks], Any]) -> None:
    async with unclosed_reports() as unclosed, aiohttp.ClientSession() as session:
        sockets = Sockets(session)
        host = Host(Llm(3, hang=True))
        host.tts = TelnyxTextToSpeech(  # type: ignore[assignment]
            TelnyxTtsConfig(api_key=SecretStr(emu.api_key), url=emu.tts_url), session=session)
        tasks = _call(host)
        reply = Reply(host, 1, user_text="Where is my order, please?", committed=True)  # type: ignore[arg-type]
        sockets.then = functools.partial(cut, reply, tasks)
        reply.start()
        for _ in range(200):
            if sockets.opened:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        reply.cancel()  # (as the call's end does, if the cut did not)
        await tasks.cancel_all()
        closed = sockets.closed()
        sockets.then = lambda: None
        del reply, host  # (an unclosed socket is reported when collected)
    assert unclosed == []  # (in a run: the ERROR line "Unclosed connection")
    assert closed == [True]


async def test_a_reply_cancelled_as_its_tts_socket_connects_closes_it(emu):
    """Cancelled between ws_connect's end and open() resuming: on 3.11 the wait_for around the
    connect returned the socket, swallowing the cancel, and the wait_for around open() then
    raised CancelledError: the socket was in nobody's hands."""
    await _reply_cut_while_opening(emu, lambda reply, tasks: reply.cancel())


async def test_a_call_ending_as_a_replys_tts_socket_connects_closes_it(emu):
    """The call's end cancels its tasks, the reply's opening among them, at the same step."""
    await _reply_cut_while_opening(emu, lambda reply, tasks: [task.cancel() for task in tasks])


class SlowToCancel(Tts):
    """A TTS plugin whose open() finishes its handshake even when cancelled (a client that
    shields it): the stream it returns is the reply's to close."""

    async def open(self, *, voice: str, sample_rate: int) -> TtsStream:
        self.streams.append(Stream())
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # the handshake's end
        return self.streams[-1]


async def test_a_stream_an_open_returns_after_the_cancel_is_closed():
    host = Host(Llm(3, hang=True))
    host.tts = SlowToCancel()
    tasks = _call(host)
    reply = Reply(host, 1, user_text="Where is my order, please?", committed=True)  # type: ignore[arg-type]
    reply.start()
    await asyncio.sleep(0.01)
    assert host.tts.streams and reply._stream is None  # opening
    reply.cancel()
    await tasks.cancel_all()
    assert [stream.closed for stream in host.tts.streams] == [True]


class EndsTheCall(Tts):
    """Opens at once; the call ends at the next loop step: before the reply's pump first runs."""

    def __init__(self, tasks: CallTasks) -> None:
        super().__init__()
        self.tasks = tasks

    async def open(self, *, voice: str, sample_rate: int) -> TtsStream:
        asyncio.get_running_loop().call_soon(lambda: [task.cancel() for task in self.tasks])
        return await super().open(voice=voice, sample_rate=sample_rate)


async def test_a_pump_cancelled_before_it_ran_still_closes_the_stream():
    """A reply the call's end finds not current (one the agent no longer holds) is not
    cancelled itself: its tasks are. A task cancelled before its first step runs none of its
    code, so the pump's own cleanup never runs: its end must close the stream."""
    host = Host(Llm(3, hang=True))
    tasks = _call(host)
    host.tts = EndsTheCall(tasks)
    reply = Reply(host, 1, user_text="Where is my order, please?", committed=True)  # type: ignore[arg-type]
    reply.start()
    await asyncio.sleep(0.01)
    await tasks.cancel_all()
    assert reply._stream is not None and not reply.cancelled
    assert [stream.closed for stream in host.tts.streams] == [True]
