"""A simulated callee that plays a corpus script over a Telnyx media stream and measures
what the caller experiences, at the carrier edge.

It sends 20 ms μ-law frames in real time (speech from the script's WAVs, else silence
or the call's background noise), reads the agent's frames as a phone would play them
(a real-time play queue; marks echoed when the audio before them has played, or late, or
never, as its :class:`MarkEcho` says; ``clear`` flushes), and follows the script's anchors
(``agent_start``, ``agent_done``). The figures it records are the bench's ground truth:

* turn latency: last voiced caller frame sent -> first voiced agent frame received;
* barge-in reaction: first voiced caller frame of a barge-in -> ``clear`` received;
* false barge-ins: agent audio cleared during a backchannel (``expect: no_interrupt``);
* premature replies: agent audio starting while the caller is inside an utterance
  (including its scripted pauses);
* missed turns: no agent reply within the timeout after an utterance expecting one;
* outbound lateness: agent frames that arrived after the play queue ran dry mid-reply.

With :class:`ReplyGaps` the callee answers a drawn time after the agent's reply has played
instead of at the script's fixed anchor (``agent_done`` + ``delay_s``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from engine import _audioop as audioop

from .corpus.model import CallScript, Step
from .telnyx_emulator.media import MarkEcho

FRAME_S = 0.02
FRAME_BYTES = 160
VOICED_RMS = 300  # agent frame loud enough to be speech (PCM16 RMS)
REPLY_IDLE_S = 0.5  # agent quiet this long: its reply is done
REPLY_TIMEOUT_S = 6.0
SILENCE_B64 = base64.b64encode(b"\xff" * FRAME_BYTES).decode()


@functools.lru_cache(maxsize=512)
def wav_frames(path: Path) -> tuple[str, ...]:
    """A μ-law WAV as base64 20 ms payloads (cached: every call of a bench reuses them)."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif chunk == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None or fmt[0] != 7 or fmt[1] != 1 or fmt[2] != 8000:
        raise ValueError(f"{path}: expected 8 kHz mono μ-law (format 7), got {fmt}")
    return tuple(
        base64.b64encode(payload[i:i + FRAME_BYTES]).decode()
        for i in range(0, len(payload) - FRAME_BYTES + 1, FRAME_BYTES)
    )


@dataclass
class ReplyGaps:
    """Reply gaps drawn uniformly from ``low`` to ``high`` seconds, seeded: a callee option.

    A gap runs from the end of the agent's reply as the caller heard it to the caller's next
    words. People time that from the words and the melody, often within 200 ms. The callee
    cannot hear those, so it stands in with the reply's closing mark: the engine sends one
    after the last frame of each utterance, and the gap counts from when that mark's audio
    has played. The caller waits for that reply, however slow, as a person who has just asked
    something does; after ``REPLY_TIMEOUT_S`` without one it goes on. With no mark (a server
    that sends none) a reply is over after ``reply_idle_s`` of quiet, so gaps shorter than
    that become that long.
    """

    low: float = 0.2
    high: float = 1.5
    seed: int | str = 0

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(f"reply gaps need 0 <= low <= high, got {self.low}..{self.high}")
        self._rng = random.Random(self.seed)

    def draw(self) -> float:
        return round(self._rng.uniform(self.low, self.high), 3)


@dataclass
class TurnResult:
    step_id: str
    expect: str
    speech_start_sent: float | None = None
    speech_end_sent: float | None = None
    first_agent_audio: float | None = None
    clear_at: float | None = None
    agent_frame_times: list[float] = field(default_factory=list)
    """Arrivals of agent frames from this utterance's onset on (barge-in and backchannel turns)."""
    premature: bool = False
    premature_at: float | None = None
    """When the premature reply's first voiced frame arrived (for the engine's account of it)."""
    barge_in_missed: bool = False
    false_barge_in: bool = False
    reply_gap_s: float | None = None
    """The drawn gap before this utterance (:class:`ReplyGaps`), None at a scripted anchor."""
    punctuated: bool | None = None
    """The line's text, as the recogniser returns it, ends in ``.?!`` (None: keys, not words)."""

    @property
    def missed(self) -> bool:
        """An utterance that expected a reply and got none."""
        return self.expect == "reply" and self.first_agent_audio is None

    @property
    def latency_ms(self) -> float | None:
        if self.speech_end_sent is None or self.first_agent_audio is None:
            return None
        return (self.first_agent_audio - self.speech_end_sent) * 1000

    @property
    def agent_stopped_at(self) -> float | None:
        """When agent audio stopped arriving after the caller's onset: the last frame before
        a gap of ≥ 100 ms (or before nothing more came)."""
        onset = self.speech_start_sent
        if onset is None:
            return None
        times = [t for t in self.agent_frame_times if t >= onset]
        if not times:
            return onset  # nothing arrived after the onset: already stopped
        for before, after in itertools.pairwise(times):
            if after - before >= 0.1:
                return before
        return times[-1]

    @property
    def barge_in_reaction_ms(self) -> float | None:
        """Caller onset -> agent audio stops arriving, or ``clear``, whichever came first."""
        if self.expect != "barge_in" or self.speech_start_sent is None:
            return None
        ends = [t for t in (self.clear_at, self.agent_stopped_at) if t is not None]
        return (min(ends) - self.speech_start_sent) * 1000 if ends else None

    @property
    def agent_paused(self) -> bool:
        """During a backchannel the agent's audio paused (≥ 100 ms) and then went on."""
        if self.expect != "no_interrupt" or self.clear_at is not None or self.speech_start_sent is None:
            return False
        times = [t for t in self.agent_frame_times if t >= self.speech_start_sent]
        return any(after - before >= 0.1 for before, after in itertools.pairwise(times))


@dataclass
class CallMeasurement:
    script: str
    category: str
    turns: list[TurnResult] = field(default_factory=list)
    agent_frames: int = 0
    clears: int = 0
    marks_echoed: int = 0
    late_frames: int = 0
    lateness_ms: list[float] = field(default_factory=list)
    completed: bool = False
    error: str | None = None
    stream_id: str | None = None
    """The media stream the call ran on: the engine's turns name it (``/bench/turns``)."""


class _AgentAudio:
    """What the callee hears: agent frames into a real-time play queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.play_end = 0.0  # when the queued agent audio finishes playing
        self.last_frame_at = 0.0
        self.last_voiced_at = 0.0
        self.voiced_event = asyncio.Event()
        self.cleared_event = asyncio.Event()
        self.marks: list[tuple[float, str]] = []  # (play position, raw mark frame)
        self.in_reply = False
        self.mark_received_at = float("-inf")  # the latest mark: when it came, when its audio ends
        self.mark_played_at = float("-inf")
        self.voiced_since_mark = False


class ScriptedCallee:
    """Plays one :class:`CallScript` on an open media WebSocket (after ``connected``/``start``)."""

    def __init__(self, script: CallScript, *, stream_id: str = "bench-stream", first_chunk: int = 1,
                 reply_idle_s: float = REPLY_IDLE_S, mark_echo: MarkEcho = MarkEcho(),
                 reply_gaps: ReplyGaps | None = None) -> None:
        self.script = script
        self.mark_echo = mark_echo
        self.reply_gaps = reply_gaps
        self._gap: float | None = None  # drawn for the step being played
        self.reply_idle_s = reply_idle_s
        """Agent quiet this long: its reply is over and the caller may talk on. Real speech
        models need more patience than the emulators (Whisper alone takes ~0.4 s)."""
        self.stream_id = stream_id
        self.result = CallMeasurement(script.name, script.category, stream_id=stream_id)
        self._chunk = first_chunk
        self._noise = self._background()
        self._noise_pos = 0
        self._turn: TurnResult | None = None
        self._speaking = False
        self._talking_at_start = False
        self._spoke_until = float("-inf")  # gaps right after the caller spoke are the agent yielding
        self._prefix = f'{{"event":"media","stream_id":"{stream_id}","sequence_number":"'
        self._sends: set[asyncio.Future[None]] = set()  # mark echoes in flight: the loop holds tasks weakly

    def _background(self) -> tuple[str, ...]:
        noise = self.script.directory / "noise.wav"
        return wav_frames(noise) if noise.is_file() else (SILENCE_B64,)

    async def run(self, ws: aiohttp.ClientWebSocketResponse) -> CallMeasurement:
        loop = asyncio.get_running_loop()
        self._ws = ws
        self._audio = _AgentAudio(loop)
        self._clock = loop.time()
        reader = loop.create_task(self._read())
        last_active = max((i for i, s in enumerate(self.script.steps) if s.kind in ("say", "dtmf")), default=-1)
        try:
            for i, step in enumerate(self.script.steps):
                if not await self._run_step(step):
                    break
                if i == last_active:
                    # All the callee had to say is said: an agent hanging up after this is a
                    # completed call, not a cut-off one.
                    self.result.completed = True
            self.result.completed = True
        except (ConnectionError, aiohttp.ClientError) as exc:
            self.result.error = f"{type(exc).__name__}: {exc}"
        finally:
            reader.cancel()
            try:
                await reader
            except (asyncio.CancelledError, Exception):
                pass
        return self.result

    # -- sending ------------------------------------------------------------------------

    async def _send(self, payload: str) -> None:
        delay = self._clock - self._audio.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = self._chunk
        await self._ws.send_str(
            f'{self._prefix}{chunk + 1}","media":{{"track":"inbound","chunk":"{chunk}",'
            f'"timestamp":"{chunk * 20}","payload":"{payload}"}}}}'
        )
        self._chunk = chunk + 1
        self._clock += FRAME_S
        self._echo_due_marks()

    async def _send_background(self) -> None:
        noise = self._noise
        await self._send(noise[self._noise_pos % len(noise)])
        self._noise_pos += 1

    async def _idle_for(self, seconds: float) -> None:
        for _ in range(round(seconds / FRAME_S)):
            await self._send_background()

    async def _idle_until(self, condition, timeout: float) -> bool:
        end = self._clock + timeout
        while not condition():
            if self._clock >= end:
                return False
            await self._send_background()
        return True

    # -- script -------------------------------------------------------------------------

    async def _wait_anchor(self, step: Step) -> None:
        audio = self._audio
        if step.after == "agent_start":
            audio.voiced_event.clear()
            await self._idle_until(audio.voiced_event.is_set, REPLY_TIMEOUT_S)
        elif step.after == "agent_done" and self.reply_gaps is not None and step.kind in ("say", "dtmf"):
            await self._wait_reply_gap(self.reply_gaps.draw())
            return
        elif step.after == "agent_done":
            previous = self._turn
            if previous is not None and previous.expect in ("reply", "barge_in") and previous.first_agent_audio is None:
                # No reply yet (to a question, or to what the caller said over the agent): a caller
                # waits for one before going on; with a recogniser that finalizes on its own, the
                # reply may come a second or more after the words.
                await self._idle_until(lambda: previous.first_agent_audio is not None, REPLY_TIMEOUT_S)
            started = self._clock
            # the agent may still be replying to the previous step: wait until it goes quiet
            await self._idle_until(
                lambda: self._clock - max(audio.last_voiced_at, started) >= self.reply_idle_s
                and self._clock >= audio.play_end,
                REPLY_TIMEOUT_S + 10,
            )
        await self._idle_for(step.delay_s)

    async def _wait_reply_gap(self, gap: float) -> None:
        """Idle until ``gap`` after the agent's reply has played (see :class:`ReplyGaps`)."""
        audio = self._audio
        started = self._clock
        self._gap = gap

        def due() -> bool:
            if self._clock < audio.play_end:
                return False  # agent audio still playing
            if audio.mark_received_at >= started and not audio.voiced_since_mark:
                end = audio.mark_played_at
            elif audio.last_voiced_at >= started and self._clock - audio.last_voiced_at >= self.reply_idle_s:
                end = audio.last_voiced_at + FRAME_S  # a reply but no mark: its last voiced frame
            elif self._clock - started >= REPLY_TIMEOUT_S:
                end = started  # no reply at all: the caller goes on
            else:
                return False
            return self._clock >= end + gap

        await self._idle_until(due, REPLY_TIMEOUT_S + 10)

    async def _run_step(self, step: Step) -> bool:
        if step.kind == "hangup":
            await self._wait_anchor(step)
            return False
        if step.kind == "wait":
            await self._wait_anchor(step)
            await self._idle_for(step.duration_s)
            return True
        if step.kind == "dtmf":
            await self._wait_anchor(step)
            turn = TurnResult(step.id or f"dtmf:{step.digits}", step.expect, reply_gap_s=self._take_gap())
            self.result.turns.append(turn)
            self._turn = turn
            self._talking_at_start = True  # keys are not speech: no premature check
            for digit in step.digits:
                await self._ws.send_str(orjson.dumps(
                    {"event": "dtmf", "stream_id": self.stream_id, "dtmf": {"digit": digit}}).decode())
                turn.speech_end_sent = self._audio.loop.time()
                await self._idle_for(step.interval_s)
            return True
        await self._wait_anchor(step)
        await self._say(step)
        return True

    async def _say(self, step: Step) -> None:
        frames = wav_frames(self.script.audio_path(step))
        first_voiced = int(step.speech_start_s / FRAME_S)
        last_voiced = max(first_voiced, int(step.speech_end_s / FRAME_S + 0.5) - 1)
        turn = TurnResult(step.id, step.expect, reply_gap_s=self._take_gap(),
                          punctuated=step.text.rstrip().endswith((".", "?", "!")))
        self.result.turns.append(turn)
        audio = self._audio
        self._talking_at_start = self._clock < audio.play_end or self._clock - audio.last_voiced_at < 0.2
        self._turn = turn
        audio.cleared_event.clear()
        self._speaking = True
        for i, payload in enumerate(frames):
            await self._send(payload)
            if i == first_voiced:
                turn.speech_start_sent = audio.loop.time()
            if i == last_voiced:
                turn.speech_end_sent = audio.loop.time()
        self._speaking = False
        self._spoke_until = audio.loop.time()
        if step.expect == "barge_in":
            await self._idle_until(audio.cleared_event.is_set, 1.0)
            turn.barge_in_missed = turn.clear_at is None
        elif step.expect == "no_interrupt":
            await self._idle_for(0.6)
            turn.false_barge_in = turn.clear_at is not None

    def _take_gap(self) -> float | None:
        gap, self._gap = self._gap, None
        return gap

    # -- receiving ------------------------------------------------------------------------

    async def _read(self) -> None:
        audio = self._audio
        loop = audio.loop
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = loop.time()
            frame = orjson.loads(msg.data)
            event = frame.get("event")
            if event == "media":
                self._on_agent_frame(frame, now)
            elif event == "clear":
                self.result.clears += 1
                audio.play_end = now
                # Pending marks come back now, as documented (or late_s from now, or never).
                due = self.mark_echo.due(now)
                audio.marks = [] if due is None else [(due, mark) for _, mark in audio.marks]
                self._echo_due_marks()
                audio.cleared_event.set()
                turn = self._turn
                if turn is not None and turn.speech_start_sent is not None and turn.clear_at is None:
                    turn.clear_at = now
            elif event == "mark":
                played_at = max(audio.play_end, now)
                due = self.mark_echo.due(played_at)
                if due is not None:
                    audio.marks.append((due, orjson.dumps({
                        "event": "mark", "stream_id": self.stream_id, "mark": frame.get("mark", {})}).decode()))
                # The reply gap counts from when the audio before the mark has played, echoed or not.
                audio.mark_received_at, audio.mark_played_at = now, played_at
                audio.voiced_since_mark = False
                self._echo_due_marks()
        # socket closed by the engine

    def _on_agent_frame(self, frame: dict, now: float) -> None:
        audio = self._audio
        self.result.agent_frames += 1
        try:
            pcm = audioop.ulaw2lin(base64.b64decode(frame["media"]["payload"]), 2)
        except (KeyError, ValueError, TypeError):
            return
        turn = self._turn
        if turn is not None and turn.expect in ("barge_in", "no_interrupt") and len(turn.agent_frame_times) < 500:
            turn.agent_frame_times.append(now)
        start = max(now, audio.play_end)
        caller_floor = self._speaking or now - self._spoke_until < self.reply_idle_s
        if (audio.in_reply and not caller_floor and now > audio.play_end + 1e-3
                and now - audio.play_end < self.reply_idle_s):
            # the queue ran dry mid-reply: the caller heard a gap
            self.result.late_frames += 1
            self.result.lateness_ms.append((now - audio.play_end) * 1000)
        audio.play_end = start + FRAME_S
        audio.last_frame_at = now
        if audioop.rms(pcm, 2) >= VOICED_RMS:
            audio.in_reply = True
            audio.last_voiced_at = now
            audio.voiced_since_mark = True
            audio.voiced_event.set()
            turn = self._turn
            if turn is not None and turn.expect in ("reply", "barge_in"):
                if turn.speech_end_sent is None:
                    # Inside the voiced span: the agent answered while the caller was mid-utterance.
                    # (Not the lead-out after it: in the noisy calls that is background noise alone.)
                    if self._speaking and not self._talking_at_start and turn.speech_start_sent is not None:
                        turn.premature = True
                        if turn.premature_at is None:
                            turn.premature_at = now
                elif turn.first_agent_audio is None:
                    turn.first_agent_audio = now
        elif now - audio.last_voiced_at > self.reply_idle_s:
            audio.in_reply = False

    def _echo_due_marks(self) -> None:
        audio = self._audio
        if not audio.marks:
            return
        now = audio.loop.time()
        # A late echo is due at its own time, whatever the agent plays by then.
        drained = self.mark_echo.mode == "late" or now >= audio.play_end - 1e-3
        while audio.marks and audio.marks[0][0] <= now and drained:
            _, mark = audio.marks.pop(0)
            self._sends.add(send := asyncio.ensure_future(self._ws.send_str(mark)))
            send.add_done_callback(self._sends.discard)
            self.result.marks_echoed += 1


class EmulatorCallee:
    """A :class:`ScriptedCallee` as the Telnyx emulator's callee: it plays ``pick(call)``'s
    script on the stream the emulator opened, and hands each measurement to ``on_result``."""

    def __init__(self, pick, on_result=None, *, reply_idle_s: float = REPLY_IDLE_S,
                 mark_echo: MarkEcho = MarkEcho(), reply_gaps=None) -> None:
        self._pick = pick
        self._on_result = on_result
        self._reply_idle_s = reply_idle_s
        self._mark_echo = mark_echo
        self._reply_gaps = reply_gaps  # call -> ReplyGaps | None

    def __call__(self, call):  # the emulator's CalleeFactory
        gaps = self._reply_gaps(call) if self._reply_gaps is not None else None
        return _EmulatorCalleeRun(self._pick(call), self._on_result, self._reply_idle_s, self._mark_echo, gaps)


class _EmulatorCalleeRun:
    def __init__(self, script: CallScript, on_result, reply_idle_s: float, mark_echo: MarkEcho,
                 reply_gaps: ReplyGaps | None = None) -> None:
        self.script = script
        self.on_result = on_result
        self.reply_idle_s = reply_idle_s
        self.mark_echo = mark_echo
        self.reply_gaps = reply_gaps

    async def run(self, ws: aiohttp.ClientWebSocketResponse, call) -> None:
        callee = ScriptedCallee(self.script, stream_id=call.stream.stream_id, reply_idle_s=self.reply_idle_s,
                                mark_echo=self.mark_echo, reply_gaps=self.reply_gaps)
        try:
            await callee.run(ws)
        finally:
            if self.on_result is not None:
                self.on_result(call, callee.result)
