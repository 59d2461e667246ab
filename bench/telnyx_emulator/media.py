"""The Telnyx side of a media stream, and the pieces a simulated callee is built from.

When a call with a ``stream_url`` is answered (or ``streaming_start`` runs), Telnyx opens
a WebSocket to the app and sends ``connected``, ``start``, then the caller's audio as
20 ms ``media`` frames in real time; the app sends back ``media`` (agent audio, played to
the caller in order), ``mark`` (echoed once the audio before it has played) and ``clear``
(drop the queued audio; pending marks come back at once).

The emulator does the handshake (:class:`MediaStream`) and then hands the socket to a
pluggable *callee*, ``callee_factory(call) -> Callee`` with ``async run(ws, call)``.
A callee is assembled from:

- :class:`FrameWriter` (``call.stream.frames``): Telnyx-shaped frames with the string
  counters ``sequence_number`` / ``chunk`` / ``timestamp``, shared with the emulator.
- :class:`Pacer`: sends one 20 ms frame per slot in real time.
- :class:`PlayQueue`: the caller's loudspeaker, a real-time model of the agent audio
  queue (when it plays, when each mark is due, what ``clear`` discards).
- :class:`AppAudioReceiver`: reads the app's frames into a PlayQueue and echoes marks.
- :class:`MarkEcho`: when marks come back: as documented, or (a fault the bench injects)
  late or never.
- :class:`ImpairedWebSocket`: optional loss / jitter / bursts / reordering on what the
  callee sends.

:class:`SilentCallee` (20 ms of μ-law silence per slot, marks echoed) is the default.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import heapq
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiohttp
import orjson
from yarl import URL

if TYPE_CHECKING:
    from .calls import CallInfo

__all__ = [
    "AUTH_HEADER",
    "FRAME_S",
    "AppAudioReceiver",
    "Callee",
    "CalleeFactory",
    "FrameWriter",
    "ImpairedWebSocket",
    "Impairment",
    "MediaFormat",
    "MarkEcho",
    "MediaStream",
    "Pacer",
    "PlayQueue",
    "SilentCallee",
]

log = logging.getLogger(__name__)

FRAME_S = 0.02
AUTH_HEADER = "x-telnyx-streaming-auth-token"

# Media stream error codes (Telnyx media streaming docs).
MALFORMED_FRAME = 100003
INVALID_MEDIA = 100004


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _dumps(document: dict[str, Any]) -> str:
    return orjson.dumps(document).decode()


# -- formats and frames ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaFormat:
    encoding: str = "PCMU"
    sample_rate: int = 8000
    channels: int = 1

    @property
    def bytes_per_second(self) -> int:
        # G.711 and G.722 carry 8 bits a sample (G.722: 64 kbit/s at its 8 kHz RTP clock);
        # L16 two. OPUS/AMR-WB are variable; treat them as 64 kbit/s for pacing.
        if self.encoding == "L16":
            return self.sample_rate * 2 * self.channels
        return 8000 * self.channels

    @property
    def frame_bytes(self) -> int:
        return round(self.bytes_per_second * FRAME_S)

    def silence_frame(self) -> bytes:
        byte = {"PCMU": 0xFF, "PCMA": 0xD5}.get(self.encoding, 0x00)
        return bytes((byte,)) * self.frame_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "sample_rate": self.sample_rate, "channels": self.channels}

    @classmethod
    def for_stream(cls, params: dict[str, Any]) -> MediaFormat:
        """The format Telnyx reports in ``start``: the requested stream codec, else the
        bidirectional codec, else the call's PCMU."""
        codec = params.get("stream_codec")
        if not codec or codec == "default":
            codec = params.get("stream_bidirectional_codec") or "PCMU"
        rate = params.get("stream_bidirectional_sampling_rate")
        if not isinstance(rate, int):
            rate = 16000 if codec == "L16" else 8000
        return cls(encoding=str(codec), sample_rate=rate)


class FrameWriter:
    """Telnyx -> app frames for one stream. Counters are strings on the wire; ``chunk``
    and ``timestamp`` (ms of audio since the stream began) advance with each media frame,
    ``sequence_number`` with every frame."""

    def __init__(self, stream_id: str, *, track: str = "inbound", frame_ms: int = 20) -> None:
        self.stream_id = stream_id
        self.track = track
        self.frame_ms = frame_ms
        self.sequence = 0
        self.chunk = 0

    def _next(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    def connected(self, auth_token: str | None = None) -> str:
        frame: dict[str, Any] = {"event": "connected", "version": "1.0.0"}
        if auth_token is not None:
            frame[AUTH_HEADER] = auth_token
        return _dumps(frame)

    def start(self, start: dict[str, Any]) -> str:
        return _dumps({"event": "start", "sequence_number": self._next(), "stream_id": self.stream_id,
                       "start": start})

    def media(self, payload: bytes, *, track: str | None = None) -> str:
        self.chunk += 1
        return _dumps({
            "event": "media", "sequence_number": self._next(), "stream_id": self.stream_id,
            "media": {"track": track or self.track, "chunk": str(self.chunk),
                      "timestamp": str((self.chunk - 1) * self.frame_ms),
                      "payload": base64.b64encode(payload).decode()},
        })

    def dtmf(self, digit: str) -> str:
        return _dumps({"event": "dtmf", "sequence_number": self._next(), "stream_id": self.stream_id,
                       "occurred_at": _now_iso(), "dtmf": {"digit": digit}})

    def mark(self, name: str) -> str:
        return _dumps({"event": "mark", "sequence_number": self._next(), "stream_id": self.stream_id,
                       "mark": {"name": name}})

    def stop(self, call_control_id: str, user_id: str = "") -> str:
        return _dumps({"event": "stop", "sequence_number": self._next(), "stream_id": self.stream_id,
                       "stop": {"user_id": user_id, "call_control_id": call_control_id}})

    def error(self, code: int, title: str, detail: str) -> str:
        return _dumps({"event": "error", "stream_id": self.stream_id,
                       "payload": {"code": code, "title": title, "detail": detail}})


# -- the caller's loudspeaker -----------------------------------------------------------------


MarkEchoMode = Literal["played", "never", "late"]


@dataclass(frozen=True, slots=True)
class MarkEcho:
    """When the carrier echoes a ``mark``.

    ``played`` is Telnyx's documented behaviour: the echo comes when the audio before the mark
    has played (at once if none is queued, and on ``clear``). ``never`` and ``late`` make the
    carrier less capable than documented, never more: the echo is lost (a dropped frame, a
    proxy, a stream mode that does not echo) or comes ``late_s`` after it was due.
    """

    mode: MarkEchoMode = "played"
    late_s: float = 1.5

    def __post_init__(self) -> None:
        if self.mode not in ("played", "never", "late"):
            raise ValueError(f"mark echo mode must be played, never or late, not {self.mode!r}")
        if not 0 <= self.late_s <= 60:
            raise ValueError("late_s must be between 0 and 60 seconds")

    def due(self, played_at: float) -> float | None:
        """When the echo of a mark whose audio finished at ``played_at`` is sent; None: never."""
        if self.mode == "played":
            return played_at
        return None if self.mode == "never" else played_at + self.late_s


class PlayQueue:
    """Agent audio as the caller hears it: queued chunks play back to back in real time.

    Pure bookkeeping over a clock (no tasks): ``push_media`` extends the queue by the
    chunk's duration, ``push_mark`` is due when everything queued before it has played
    (at once if nothing is queued), ``clear`` drops what has not played yet and hands back
    every pending mark (``mark_echo`` may delay or drop them all). :meth:`next_marks` waits
    for marks to fall due.
    """

    def __init__(self, bytes_per_second: int = 8000, *, clock: Callable[[], float] = time.monotonic,
                 mark_echo: MarkEcho = MarkEcho()) -> None:
        self.bytes_per_second = bytes_per_second
        self.clock = clock
        self.mark_echo = mark_echo
        self.play_until = 0.0
        self._marks: deque[tuple[float, str]] = deque()
        self._changed = asyncio.Event()
        self.chunks = 0
        self.received_s = 0.0
        self.cleared_s = 0.0
        self.clears = 0
        self.first_audio_at: float | None = None
        self.last_audio_at: float | None = None

    def _time(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def push_media(self, payload: bytes, now: float | None = None) -> float:
        """Queue a chunk; returns when it starts playing."""
        now = self._time(now)
        duration = len(payload) / self.bytes_per_second
        start = max(now, self.play_until)
        self.play_until = start + duration
        self.chunks += 1
        self.received_s += duration
        if self.first_audio_at is None:
            self.first_audio_at = now
        self.last_audio_at = now
        return start

    def push_mark(self, name: str, now: float | None = None) -> None:
        due = self.mark_echo.due(max(self._time(now), self.play_until))
        if due is not None:
            self._marks.append((due, name))
            self._changed.set()

    def clear(self, now: float | None = None) -> list[str]:
        """Drop the unplayed audio; returns the pending marks now due (all of them, as
        documented; none when echoes come late, those fall due ``late_s`` from now)."""
        now = self._time(now)
        self.cleared_s += max(0.0, self.play_until - now)
        self.play_until = min(self.play_until, now)
        self.clears += 1
        due = self.mark_echo.due(now)
        pending = [name for _, name in self._marks]
        self._marks.clear()
        self._changed.set()
        if due is None or due <= now:
            return pending
        self._marks.extend((due, name) for name in pending)
        return []

    def pop_due(self, now: float | None = None) -> list[str]:
        now = self._time(now)
        names = []
        while self._marks and self._marks[0][0] <= now:
            names.append(self._marks.popleft()[1])
        return names

    def next_due(self) -> float | None:
        return self._marks[0][0] if self._marks else None

    def backlog_s(self, now: float | None = None) -> float:
        return max(0.0, self.play_until - self._time(now))

    def is_playing(self, now: float | None = None) -> bool:
        return self.backlog_s(now) > 0

    @property
    def pending_marks(self) -> list[str]:
        return [name for _, name in self._marks]

    async def next_marks(self) -> list[str]:
        """Wait until at least one mark is due and return the due ones."""
        while True:
            due = self.pop_due()
            if due:
                return due
            self._changed.clear()
            at = self.next_due()
            timeout = None if at is None else max(0.0, at - self.clock())
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                pass


class AppAudioReceiver:
    """Reads the app's frames: ``media`` into the PlayQueue, ``mark`` echoed when due,
    ``clear`` flushes and echoes pending marks at once. Malformed frames get Telnyx's
    ``error`` frames (100003 / 100004). Hooks let a scripted callee watch the agent."""

    def __init__(self, ws: Any, frames: FrameWriter, queue: PlayQueue, *,
                 on_media: Callable[[bytes, float], None] | None = None,
                 on_clear: Callable[[float], None] | None = None) -> None:
        self.ws = ws
        self.frames = frames
        self.queue = queue
        self.on_media = on_media
        self.on_clear = on_clear
        self.marks_echoed: list[str] = []
        self.errors_sent = 0

    async def run(self) -> None:
        """Until the socket closes."""
        echo = asyncio.create_task(self._echo_due_marks())
        try:
            async for message in self.ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await self._handle(message.data)
        finally:
            echo.cancel()
            await asyncio.wait({echo})

    async def _handle(self, text: str) -> None:
        try:
            frame = orjson.loads(text)
            event = frame["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.errors_sent += 1
            await self.ws.send_str(self.frames.error(MALFORMED_FRAME, "malformed_frame", "frame is not valid JSON"))
            return
        if event == "media":
            try:
                payload = base64.b64decode(frame["media"]["payload"], validate=True)
            except (KeyError, TypeError, binascii.Error, ValueError):
                self.errors_sent += 1
                await self.ws.send_str(self.frames.error(INVALID_MEDIA, "invalid_media", "payload is not base64"))
                return
            start = self.queue.push_media(payload)
            if self.on_media is not None:
                self.on_media(payload, start)
        elif event == "mark":
            name = (frame.get("mark") or {}).get("name")
            if isinstance(name, str):
                self.queue.push_mark(name)
        elif event == "clear":
            names = self.queue.clear()
            if self.on_clear is not None:
                self.on_clear(self.queue.clock())
            await self._echo(names)

    async def _echo(self, names: list[str]) -> None:
        for name in names:
            self.marks_echoed.append(name)
            await self.ws.send_str(self.frames.mark(name))

    async def _echo_due_marks(self) -> None:
        try:
            while True:
                await self._echo(await self.queue.next_marks())
        except (ConnectionError, aiohttp.ClientError):
            pass


class Pacer:
    """Sends media frames one per 20 ms slot, in real time. After a stall longer than
    ``max_lag_s`` it re-anchors instead of bursting, as a carrier's RTP clock would."""

    def __init__(self, ws: Any, frames: FrameWriter, *, frame_s: float = FRAME_S, max_lag_s: float = 0.1) -> None:
        self.ws = ws
        self.frames = frames
        self.frame_s = frame_s
        self.max_lag_s = max_lag_s
        self._next: float | None = None
        self.sent = 0
        self.last_sent_at: float | None = None

    async def send(self, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next is None or now - self._next > self.max_lag_s:
            self._next = now
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)
        await self.ws.send_str(self.frames.media(payload))
        self.last_sent_at = loop.time()
        self.sent += 1
        self._next += self.frame_s


# -- callees ---------------------------------------------------------------------------------


class Callee(Protocol):
    """The far end of a call. ``run`` owns the socket until it returns (the callee hangs
    up) or is cancelled (the app hung up / stopped streaming)."""

    async def run(self, ws: aiohttp.ClientWebSocketResponse, call: CallInfo) -> None: ...


CalleeFactory = Callable[["CallInfo"], Callee]


class SilentCallee:
    """A line that is open and quiet: 20 ms of silence per slot, agent audio played and
    marks echoed (as ``mark_echo`` says). Hangs up after ``duration_s`` if given, else stays
    until stopped."""

    def __init__(self, duration_s: float | None = None, *, mark_echo: MarkEcho = MarkEcho()) -> None:
        self.duration_s = duration_s
        self.mark_echo = mark_echo
        self.queue: PlayQueue | None = None
        self.receiver: AppAudioReceiver | None = None
        self.frames_sent = 0

    async def run(self, ws: aiohttp.ClientWebSocketResponse, call: CallInfo) -> None:
        stream = call.stream
        assert stream is not None
        self.queue = PlayQueue(stream.media_format.bytes_per_second, clock=asyncio.get_running_loop().time,
                               mark_echo=self.mark_echo)
        self.receiver = AppAudioReceiver(ws, stream.frames, self.queue)
        reader = asyncio.create_task(self.receiver.run())
        pacer = Pacer(ws, stream.frames)
        silence = stream.media_format.silence_frame()
        loop = asyncio.get_running_loop()
        end = None if self.duration_s is None else loop.time() + self.duration_s
        try:
            while not reader.done() and (end is None or loop.time() < end):
                await pacer.send(silence)
                self.frames_sent += 1
        except (ConnectionError, aiohttp.ClientError):
            # The app's end of the stream went away (closed, or its process died). Let the reader
            # see the socket close, so the stream ends as the app's doing and the call stays up,
            # as at Telnyx, rather than passing for the callee hanging up.
            await asyncio.wait({reader}, timeout=1.0)
        finally:
            reader.cancel()
            await asyncio.wait({reader})


# -- network impairments -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Impairment:
    """What a bad network does to the callee's media frames (seeded, reproducible)."""

    jitter_ms: float = 0.0
    """Each frame is delayed by uniform(0, jitter_ms)."""
    burst: int = 1
    """Frames are held and released ``burst`` at a time."""
    reorder_p: float = 0.0
    """Probability a frame is held back two slots, so later frames overtake it."""
    loss_p: float = 0.0
    """Probability a frame is dropped."""
    seed: int = 0


class ImpairedWebSocket:
    """Wraps the socket a callee sends on: ``media`` frames go through the impairment,
    other frames (dtmf, mark echoes, errors) straight through. Everything else is the
    wrapped socket's."""

    def __init__(self, ws: Any, impairment: Impairment) -> None:
        self._ws = ws
        self.impairment = impairment
        self._rng = random.Random(impairment.seed)
        self._heap: list[tuple[float, int, str]] = []
        self._held: list[str] = []
        self._order = 0
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self.sent = 0
        self.dropped = 0
        self.reordered = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    def __aiter__(self) -> Any:
        return self._ws.__aiter__()

    async def send_str(self, data: str, *args: Any, **kwargs: Any) -> None:
        if not data.startswith('{"event":"media"'):
            await self._ws.send_str(data, *args, **kwargs)
            return
        imp = self.impairment
        if imp.loss_p and self._rng.random() < imp.loss_p:
            self.dropped += 1
            return
        if imp.burst > 1:
            self._held.append(data)
            if len(self._held) < imp.burst:
                return
            batch, self._held = self._held, []
        else:
            batch = [data]
        now = asyncio.get_running_loop().time()
        for frame in batch:
            release = now + (self._rng.uniform(0, imp.jitter_ms) / 1000 if imp.jitter_ms else 0.0)
            if imp.reorder_p and self._rng.random() < imp.reorder_p:
                release += 2 * FRAME_S
                self.reordered += 1
            self._order += 1
            heapq.heappush(self._heap, (release, self._order, frame))
        self._wake.set()
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_due())

    async def _send_due(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._heap:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                release = self._heap[0][0]
                delay = release - loop.time()
                if delay > 0:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), delay)
                    except TimeoutError:
                        pass
                    continue
                _, _, frame = heapq.heappop(self._heap)
                await self._ws.send_str(frame)
                self.sent += 1
        except (ConnectionError, aiohttp.ClientError):
            pass

    async def cancel(self) -> None:
        """Drop whatever is still in flight (the call is over)."""
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.wait({self._sender})


# -- the emulator's end of a stream ------------------------------------------------------------


StreamOutcome = Literal["callee_hangup", "app_closed", "stopped"]


@dataclass(eq=False)
class MediaStream:
    """One media stream of a call: connect, handshake, run the callee, stop."""

    call: CallInfo
    params: dict[str, Any]
    session: aiohttp.ClientSession
    callee_factory: CalleeFactory
    impairment: Impairment | None = None
    stream_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ws: aiohttp.ClientWebSocketResponse | None = None
    callee: Callee | None = None

    def __post_init__(self) -> None:
        self.url: str = self.params["stream_url"]
        self.track: str = self.params.get("stream_track") or "inbound_track"
        self.auth_token: str | None = self.params.get("stream_auth_token")
        self.media_format = MediaFormat.for_stream(self.params)
        self.frames = FrameWriter(self.stream_id)
        self._callee_task: asyncio.Task[None] | None = None
        self._callee_ws: Any = None
        self._stopping = False

    async def connect(self) -> str | None:
        """Open the WebSocket; returns a failure reason, or None when connected."""
        headers = {AUTH_HEADER: self.auth_token} if self.auth_token else {}
        try:
            self.ws = await self.session.ws_connect(
                self.url, headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=1.0), autoping=True)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # Without the query string: apps sometimes put credentials there.
            log.info("media stream to %s failed: %s", URL(self.url).with_query(None), type(exc).__name__)
            return "connection_failed"
        if self._stopping:
            await self.ws.close()
            return "connection_failed"
        return None

    def _start_payload(self) -> dict[str, Any]:
        call = self.call
        custom = self.params.get("custom_parameters") or []
        if isinstance(custom, list):
            custom = {p["name"]: p.get("value") for p in custom if isinstance(p, dict) and "name" in p}
        return {
            "user_id": call.user_id, "call_control_id": call.call_control_id,
            "call_session_id": call.call_session_id, "from": call.from_, "to": call.to, "tags": [],
            "client_state": call.client_state, "custom_parameters": custom,
            "media_format": self.media_format.to_dict(),
        }

    async def serve(self) -> StreamOutcome:
        """Send ``connected`` and ``start``, then run the callee until it ends."""
        assert self.ws is not None
        ws = self.ws
        try:
            await ws.send_str(self.frames.connected(self.auth_token))
            await ws.send_str(self.frames.start(self._start_payload()))
        except (ConnectionError, aiohttp.ClientError):
            return "app_closed"
        if self._stopping:
            return "stopped"
        self.callee = self.callee_factory(self.call)
        self._callee_ws = ImpairedWebSocket(ws, self.impairment) if self.impairment else ws
        self._callee_task = asyncio.create_task(self.callee.run(self._callee_ws, self.call))
        await asyncio.wait({self._callee_task})
        if self._stopping:
            return "stopped"
        if not self._callee_task.cancelled() and self._callee_task.exception() is not None:
            log.error("callee for %s failed", self.call.call_control_id, exc_info=self._callee_task.exception())
        return "app_closed" if ws.closed else "callee_hangup"

    async def send_dtmf(self, digit: str) -> None:
        if self.ws is not None and not self.ws.closed and not self._stopping:
            try:
                await self.ws.send_str(self.frames.dtmf(digit))
            except (ConnectionError, aiohttp.ClientError):
                pass

    async def stop(self) -> None:
        """Cancel the callee, send ``stop``, close the socket. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        if self._callee_task is not None and not self._callee_task.done():
            self._callee_task.cancel()
            await asyncio.wait({self._callee_task})
        if isinstance(self._callee_ws, ImpairedWebSocket):
            await self._callee_ws.cancel()
        ws = self.ws
        if ws is not None and not ws.closed:
            try:
                await ws.send_str(self.frames.stop(self.call.call_control_id, self.call.user_id))
                await ws.close()
            except (ConnectionError, aiohttp.ClientError):
                pass
