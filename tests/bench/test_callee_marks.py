"""The simulated callee's carrier echoes marks as documented, late, or never (virtual time)."""

import asyncio
import base64

import aiohttp
import orjson
import pytest

from bench.callee import ScriptedCallee, _AgentAudio
from bench.corpus.model import load_corpus
from bench.telnyx_emulator import MarkEcho

FRAME = base64.b64encode(b"\xff" * 160).decode()  # 20 ms of μ-law silence


class Clock:
    def __init__(self):
        self.now = 100.0

    def time(self):
        return self.now


class Socket:
    """Hands the callee the agent's frames; records what the callee sends back."""

    def __init__(self, frames):
        self.incoming = [aiohttp.WSMessage(aiohttp.WSMsgType.TEXT, orjson.dumps(f).decode(), None) for f in frames]
        self.sent = []

    def __aiter__(self):
        return self._messages()

    async def _messages(self):
        for message in self.incoming:
            yield message

    async def send_str(self, data):
        self.sent.append(orjson.loads(data))


async def agent_sends(mode, frames, late_s=1.5):
    clock = Clock()
    callee = ScriptedCallee(load_corpus()[0], mark_echo=MarkEcho(mode, late_s))
    callee._ws = Socket(frames)
    callee._audio = _AgentAudio(clock)
    await callee._read()
    await asyncio.sleep(0)  # one turn of the loop: what the echo schedules on it runs
    return callee, clock


def echoes(callee):
    return [f["mark"]["name"] for f in callee._ws.sent if f["event"] == "mark"]


async def advance(callee, clock, to):
    clock.now = to
    callee._echo_due_marks()
    await asyncio.sleep(0)


AUDIO_THEN_MARK = [{"event": "media", "media": {"payload": FRAME}}] * 10 + [{"event": "mark", "mark": {"name": "u1"}}]


async def test_played_marks_come_back_when_the_audio_before_them_has_played():
    callee, clock = await agent_sends("played", AUDIO_THEN_MARK)  # 200 ms of audio from t=100
    assert echoes(callee) == []
    await advance(callee, clock, 100.19)
    assert echoes(callee) == []
    await advance(callee, clock, 100.2)
    assert echoes(callee) == ["u1"] and callee.result.marks_echoed == 1


async def test_late_marks_come_back_late_s_after_they_were_due():
    callee, clock = await agent_sends("late", AUDIO_THEN_MARK, late_s=1.5)
    await advance(callee, clock, 100.2)
    assert echoes(callee) == []
    await advance(callee, clock, 101.69)
    assert echoes(callee) == []
    await advance(callee, clock, 101.7)
    assert echoes(callee) == ["u1"]


async def test_a_carrier_that_never_echoes_keeps_every_mark():
    callee, clock = await agent_sends("never", [*AUDIO_THEN_MARK, {"event": "clear"}])
    await advance(callee, clock, 130.0)
    assert echoes(callee) == [] and callee.result.marks_echoed == 0 and callee.result.clears == 1


@pytest.mark.parametrize(("mode", "at_clear", "later"), [("played", ["u1"], ["u1"]), ("late", [], ["u1"])])
async def test_clear_returns_pending_marks_at_once_or_late(mode, at_clear, later):
    callee, clock = await agent_sends(mode, [*AUDIO_THEN_MARK, {"event": "clear"}])
    assert echoes(callee) == at_clear  # cleared at t=100, before the audio had played
    await advance(callee, clock, 101.5)
    assert echoes(callee) == later
