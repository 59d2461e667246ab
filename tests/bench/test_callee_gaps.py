"""The simulated callee's drawn reply gaps (:class:`bench.callee.ReplyGaps`), in virtual time.

A fake engine answers every caller line with a paced reply and the mark after it, as the
engine's playout does; the callee plays a committed field script. Time is virtual: the
event loop's clock jumps to the next timer whenever every task waits, so the figures are
exact and the tests take no wall time to speak of.
"""

from __future__ import annotations

import asyncio
import base64
import math
import selectors
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest

from bench.callee import FRAME_S, REPLY_IDLE_S, VOICED_RMS, CallMeasurement, ReplyGaps, ScriptedCallee
from bench.corpus.model import FIELD_DIR, load_script
from bench.runner import reply_gaps
from engine import _audioop as audioop

SCRIPT = load_script(FIELD_DIR / "field-05-espeak-220")  # the agent speaks first; three lines, then hang-up
TONE = base64.b64encode(audioop.lin2ulaw(b"".join(
    int(8000 * math.sin(2 * math.pi * 440 * k / 8000)).to_bytes(2, "little", signed=True) for k in range(160)),
    2)).decode()
ENDPOINT_S = 0.3


class _InstantSelector(selectors.SelectSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None):
        ready = super().select(0)
        if not ready and timeout:
            self._loop.now += timeout  # nothing to do until the next timer: jump to it
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(selector=_InstantSelector(self))

    def time(self) -> float:
        return self.now


@dataclass
class _Message:
    data: str
    type: aiohttp.WSMsgType = aiohttp.WSMsgType.TEXT


@dataclass
class FakeEngine:
    """The engine's end of the media WebSocket: greets, then answers each caller line
    ``ENDPOINT_S + reply_delay_s`` after its last voiced frame with ``reply_s`` of audio (paced,
    one frame per 20 ms) and a mark after it."""

    reply_delay_s: float = 0.1
    reply_s: float = 1.0
    reply_ends: list[float] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)
    _inbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    _speaking: bool = False
    _last_voiced: float = 0.0
    _greeted: bool = False
    _tasks: list = field(default_factory=list)

    async def send_str(self, data: str) -> None:  # the callee's frames
        frame = orjson.loads(data)
        if frame.get("event") != "media":
            return
        now = asyncio.get_running_loop().time()
        if not self._greeted:
            self._greeted = True
            self._tasks.append(asyncio.ensure_future(self._reply(0.1)))
        pcm = audioop.ulaw2lin(base64.b64decode(frame["media"]["payload"]), 2)
        if audioop.rms(pcm, 2) >= VOICED_RMS:
            if not self._speaking:
                self.onsets.append(now)
            self._speaking, self._last_voiced = True, now
        elif self._speaking and now - self._last_voiced >= ENDPOINT_S:
            self._speaking = False
            self._tasks.append(asyncio.ensure_future(self._reply(self.reply_delay_s)))

    async def _reply(self, delay: float) -> None:
        await asyncio.sleep(delay)
        for _ in range(round(self.reply_s / FRAME_S)):  # paced, as the engine's playout sends
            self._inbox.put_nowait(_Message(f'{{"event":"media","media":{{"payload":"{TONE}"}}}}'))
            await asyncio.sleep(FRAME_S)
        self._inbox.put_nowait(_Message(f'{{"event":"mark","mark":{{"name":"r{len(self.reply_ends)}"}}}}'))
        self.reply_ends.append(asyncio.get_running_loop().time())  # the last frame has played

    def __aiter__(self) -> FakeEngine:
        return self

    async def __anext__(self) -> _Message:
        return await self._inbox.get()


async def play(engine: FakeEngine, gaps: ReplyGaps | None) -> CallMeasurement:
    """The call on the test's loop, which is on virtual time (``loop_factories=["virtual"]``)."""
    try:
        return await ScriptedCallee(SCRIPT, reply_gaps=gaps).run(engine)
    finally:
        for task in engine._tasks:
            task.cancel()
        await asyncio.gather(*engine._tasks, return_exceptions=True)


def heard_gaps(engine: FakeEngine) -> list[float]:
    """Per caller line: its voiced onset minus the end of the agent reply before it, less the
    line's own lead-in (the WAV starts ``speech_start_s`` before its voice)."""
    lines = SCRIPT.utterances()
    assert len(engine.onsets) == len(lines)
    out = []
    for onset, line in zip(engine.onsets, lines, strict=False):
        reply_end = max(end for end in engine.reply_ends if end <= onset)
        out.append(onset - reply_end - line.speech_start_s)
    return out


@pytest.mark.parametrize("reply_delay_s", [0.1, 1.2], ids=["prompt-reply", "reply-slower-than-idle"])
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_the_callee_answers_each_reply_after_the_gap_it_drew(reply_delay_s: float) -> None:
    engine = FakeEngine(reply_delay_s=reply_delay_s)
    result = await play(engine, ReplyGaps(0.2, 1.5, seed="test"))
    draws = ReplyGaps(0.2, 1.5, seed="test")
    expected = [draws.draw() for _ in SCRIPT.utterances()]
    assert [t.reply_gap_s for t in result.turns] == expected
    assert all(0.2 <= g <= 1.5 for g in expected) and len(set(expected)) == len(expected)
    for heard, drawn in zip(heard_gaps(engine), expected, strict=False):
        # The callee moves in 20 ms frames, and a line's voice starts inside one.
        assert drawn - FRAME_S <= heard <= drawn + 3 * FRAME_S, (heard, drawn)
    # A reply slower than the 0.5 s the corpus's anchor waits is waited for, not talked over.
    assert not any(t.missed or t.premature for t in result.turns)
    assert result.completed and result.error is None


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_without_gaps_the_callee_keeps_the_scripts_anchors() -> None:
    engine = FakeEngine()
    result = await play(engine, None)
    assert all(t.reply_gap_s is None for t in result.turns)
    for heard, line in zip(heard_gaps(engine), SCRIPT.utterances(), strict=False):
        # agent_done: quiet for reply_idle_s after the last frame arrived, then the scripted delay.
        assert line.delay_s + REPLY_IDLE_S - 2 * FRAME_S <= heard <= line.delay_s + REPLY_IDLE_S + 3 * FRAME_S, heard


def test_reply_gaps_are_seeded_per_call_and_only_for_field_callers() -> None:
    corpus = load_script(FIELD_DIR.parent / "calls" / "plain-01-order-status")
    assert reply_gaps(corpus, 0) is None
    first, again, other = reply_gaps(SCRIPT, 3), reply_gaps(SCRIPT, 3), reply_gaps(SCRIPT, 4)
    assert first is not None and again is not None and other is not None
    a = [first.draw() for _ in range(5)]
    assert a == [again.draw() for _ in range(5)]
    assert a != [other.draw() for _ in range(5)]
    with pytest.raises(ValueError, match="low <= high"):
        ReplyGaps(1.5, 0.2)
