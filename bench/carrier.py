"""The carrier side of a Telnyx media stream, over a real WebSocket.

Plays a caller's audio to the engine as Telnyx does (``connected``, ``start``, then
20 ms ``media`` frames in real time, ``stop``), reads the engine's frames back as
the caller would hear them, and measures at this edge: turn latency (last voiced
caller frame sent -> first agent frame received) and barge-in reaction (caller
speech onset -> ``clear`` received). Payloads are base64-encoded before the clock
starts and frames built from a template, so the load side stays cheap.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import dataclass, field

import aiohttp
import orjson

from engine.codecs import PCMU

FRAME_S = 0.02
FRAME_BYTES = 160


@dataclass
class Utterance:
    """Caller speech: ``pcm`` (PCM16 8 kHz) starting ``delay`` seconds after the previous
    step's anchor: after the agent's reply ends, or, with ``barge_in``, after the agent's
    reply starts."""

    pcm: bytes
    delay: float = 0.5
    barge_in: bool = False
    label: str = ""


@dataclass
class TurnMeasure:
    label: str
    speech_end_sent: float | None = None
    first_agent_frame: float | None = None
    speech_start_sent: float | None = None
    clear_received: float | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.speech_end_sent is None or self.first_agent_frame is None:
            return None
        return (self.first_agent_frame - self.speech_end_sent) * 1000

    @property
    def barge_in_reaction_ms(self) -> float | None:
        if self.speech_start_sent is None or self.clear_received is None:
            return None
        return (self.clear_received - self.speech_start_sent) * 1000


@dataclass
class CallResult:
    turns: list[TurnMeasure] = field(default_factory=list)
    agent_frames: int = 0
    clears: int = 0
    marks: int = 0


def _media_message(stream_id: str, chunk: int, payload_b64: str) -> str:
    return (
        f'{{"event":"media","sequence_number":"{chunk + 1}","stream_id":"{stream_id}",'
        f'"media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{chunk * 20}","payload":"{payload_b64}"}}}}'
    )


class CallerStream:
    """One simulated call: caller audio out at real time, agent audio in."""

    def __init__(self, url: str, script: list[Utterance], *, call_control_id: str | None = None,
                 idle_after_reply: float = 0.3, on_event=None) -> None:
        self.url = url
        self.script = script
        self.call_control_id = call_control_id or f"v3:{uuid.uuid4().hex}"
        self.stream_id = str(uuid.uuid4())
        self.idle_after_reply = idle_after_reply
        self.on_event = on_event or (lambda text: None)
        self.result = CallResult()
        self._chunk = 1
        self._silence = base64.b64encode(PCMU.silence(FRAME_BYTES)).decode()
        self._last_agent_frame: float | None = None
        self._reply_started = asyncio.Event()
        self._current: TurnMeasure | None = None
        self._last_sent_at = 0.0

    def _frames(self, pcm: bytes) -> list[str]:
        ulaw = PCMU.encode(pcm)
        return [base64.b64encode(ulaw[i:i + FRAME_BYTES]).decode()
                for i in range(0, len(ulaw) - FRAME_BYTES + 1, FRAME_BYTES)]

    async def run(self, session: aiohttp.ClientSession) -> CallResult:
        loop = asyncio.get_running_loop()
        async with session.ws_connect(self.url) as ws:
            await ws.send_str(orjson.dumps({"event": "connected", "version": "1.0.0"}).decode())
            await ws.send_str(orjson.dumps({
                "event": "start", "sequence_number": "1", "stream_id": self.stream_id,
                "start": {"call_control_id": self.call_control_id, "from": "+15550100001", "to": "+15550100002",
                          "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}},
            }).decode())
            reader = loop.create_task(self._read(ws))
            try:
                await self._speak(ws, loop)
            finally:
                await ws.send_str(orjson.dumps({"event": "stop", "stream_id": self.stream_id,
                                                "stop": {"call_control_id": self.call_control_id}}).decode())
                reader.cancel()
                try:
                    await reader
                except asyncio.CancelledError:
                    pass
        return self.result

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = loop.time()
            frame = orjson.loads(msg.data)
            event = frame.get("event")
            if event == "media":
                self.result.agent_frames += 1
                self._last_agent_frame = now
                turn = self._current
                if turn is not None and turn.first_agent_frame is None and turn.speech_end_sent is not None:
                    turn.first_agent_frame = now
                    self.on_event(f"agent starts replying to {turn.label!r} after {turn.latency_ms:.0f} ms")
                self._reply_started.set()
            elif event == "clear":
                self.result.clears += 1
                turn = self._current
                if turn is not None and turn.clear_received is None and turn.speech_start_sent is not None:
                    turn.clear_received = now
                    self.on_event(f"agent audio cleared {turn.barge_in_reaction_ms:.0f} ms after the caller cut in")
            elif event == "mark":
                self.result.marks += 1
                # Echo it back when "played": this carrier plays instantly, so at once.
                await ws.send_str(msg.data)

    async def _speak(self, ws: aiohttp.ClientWebSocketResponse, loop: asyncio.AbstractEventLoop) -> None:
        clock = loop.time()
        for utterance in self.script:
            if utterance.barge_in:
                clock = await self._stream_silence_until_reply_starts(ws, clock)
            else:
                clock = await self._stream_silence_until_reply_done(ws, clock)
            clock = await self._stream_silence(ws, clock, utterance.delay)
            turn = TurnMeasure(utterance.label)
            self.result.turns.append(turn)
            self._current = turn
            self._reply_started.clear()
            self.on_event(f"caller says {utterance.label!r}" + (" over the agent" if utterance.barge_in else ""))
            frames = self._frames(utterance.pcm)
            clock = await self._send(ws, clock, frames[0])
            turn.speech_start_sent = self._last_sent_at
            for payload in frames[1:]:
                clock = await self._send(ws, clock, payload)
            turn.speech_end_sent = self._last_sent_at
        await self._stream_silence_until_reply_done(ws, clock)

    async def _stream_silence_until_reply_done(self, ws, clock: float, limit: float = 10.0) -> float:
        """Keep the line open (silence) until the agent has replied and gone quiet."""
        end = clock + limit
        while clock < end:
            turn = self._current
            if turn is None:
                break
            last = self._last_agent_frame
            if turn.first_agent_frame is not None and last is not None and clock - last > self.idle_after_reply:
                break
            clock = await self._send(ws, clock, self._silence)
        return clock

    async def _stream_silence_until_reply_starts(self, ws, clock: float, limit: float = 10.0) -> float:
        """The line stays open while the agent thinks: silence until its reply arrives."""
        end = clock + limit
        while clock < end and not self._reply_started.is_set():
            clock = await self._send(ws, clock, self._silence)
        return clock

    async def _stream_silence(self, ws, clock: float, seconds: float) -> float:
        for _ in range(int(seconds / FRAME_S)):
            clock = await self._send(ws, clock, self._silence)
        return clock

    async def _send(self, ws, clock: float, payload: str) -> float:
        """Send one frame at its real-time slot; returns the next slot."""
        loop = asyncio.get_running_loop()
        delay = clock - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send_str(_media_message(self.stream_id, self._chunk, payload))
        self._last_sent_at = loop.time()
        self._chunk += 1
        return clock + FRAME_S
