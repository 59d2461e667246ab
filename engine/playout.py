"""Outbound agent audio: cut TTS output into frames and pace them to the carrier.

Sans-IO like the rest of the engine: no sockets, no clock, no tasks. The session
feeds encoded TTS bytes to a :class:`Reframer`, pushes the (pre-serialized) frames
into a :class:`Playout`, and calls :meth:`Playout.pull` with the current monotonic
time whenever it wakes; ``pull`` hands frames and marks to callbacks.

Why pace at all: the carrier plays media as it arrives and buffers whatever is
ahead of its play cursor. Bulk sending is cheapest, but after a barge-in all of
that buffer is audio the caller never hears. Paced mode keeps about ``lead_ms`` at
the carrier, so ``clear`` cuts the agent off within a few frames.

Either way the engine models the carrier's play cursor (each frame plays when it
arrives or when the previous one ends, whichever is later; zero network delay),
which is what lets it say exactly how much of an utterance the caller heard.

The same model backs up the carrier's mark echo: a mark still unechoed
``mark_echo_margin_ms`` after its audio should have finished is taken as played
(:meth:`Playout.take_overdue`), so a lost echo delays nothing by more than the margin.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import FRAME_MS, PlayoutConfig

__all__ = ["Interruption", "Playout", "Reframer"]

_HISTORY = 8
"""Utterances remembered for heard_ms once settled or played out."""

_MAX_MARKS = 32
"""Marks awaiting their echo; bounds memory if a carrier never echoes."""

_LONG_AGO = -(1 << 62)
"""A play cursor / send time before any real clock reading (integer microseconds)."""

_NEVER = 1 << 62
"""A deadline after any real clock reading (integer microseconds)."""


class Reframer:
    """Cut encoded audio chunks of any size into frames of exactly ``frame_bytes``."""

    __slots__ = ("frame_bytes", "_buf", "_pad")

    def __init__(self, frame_bytes: int, silence_byte: int) -> None:
        if frame_bytes <= 0:
            raise ValueError("frame_bytes must be positive")
        self.frame_bytes = frame_bytes
        self._buf = bytearray()  # the remainder: always shorter than one frame
        self._pad = bytes((silence_byte,)) * frame_bytes

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """The complete frames now available (possibly none); keeps the remainder."""
        fb = self.frame_bytes
        buf = self._buf
        if type(data) is not bytes:
            # Slice a view so only each frame is copied, never the whole chunk; cast
            # makes len() count bytes whatever the buffer's item type.
            data = memoryview(data).cast("B")
        size = len(data)
        pos = 0
        frames: list[bytes] = []
        if buf:
            pos = fb - len(buf)
            if size < pos:
                buf += data
                return frames
            buf += data[:pos]
            frames.append(bytes(buf))
            buf.clear()
        end = pos + (size - pos) // fb * fb
        if end > pos:
            if type(data) is bytes:
                frames += [data[i : i + fb] for i in range(pos, end, fb)]
            else:
                frames += [data[i : i + fb].tobytes() for i in range(pos, end, fb)]  # type: ignore[union-attr]
        if end < size:
            buf += data[end:]
        return frames

    def flush(self) -> bytes | None:
        """The remainder padded with silence to a full frame, or None if there is none."""
        buf = self._buf
        if not buf:
            return None
        frame = bytes(buf) + self._pad[len(buf) :]
        buf.clear()
        return frame

    def reset(self) -> None:
        """Drop the remainder (barge-in: the rest of the utterance will never play)."""
        self._buf.clear()


@dataclass(frozen=True, slots=True)
class Interruption:
    utterance_id: int | None
    """The utterance that was audible or pending when interrupted (None if nothing was)."""
    heard_ms: int
    """How much of it the caller heard: whole frames that finished playing."""
    sent_ms: int
    """How much of it had been sent to the carrier."""
    dropped_frames: int
    """Frames of it, and of any later queued utterances, discarded unsent."""


class _Utterance:
    """Queue and play accounting of one utterance. Times are integer microseconds."""

    __slots__ = ("uid", "queued", "sent", "finished", "pending", "starved", "interrupted",
                 "heard_ms", "segments", "end", "mark_due")

    def __init__(self, uid: int) -> None:
        self.uid = uid
        self.queued = 0  # frames waiting in Playout._frames
        self.sent = 0
        self.finished = False
        self.pending = True  # in Playout._queue: frames or a mark still to send
        self.starved = False  # its queue was empty (TTS behind) at the last pull
        self.interrupted = False
        self.heard_ms: int | None = None  # frozen once settled (confirmed or interrupted)
        # (play start, index of its first frame): one entry, plus one per gap at the carrier.
        self.segments: list[tuple[int, int]] | None = []
        self.end = _LONG_AGO  # play end of its last sent frame
        self.mark_due = _NEVER  # once its mark is sent: when to stop waiting for the echo

    def heard_frames(self, t: int, frame: int) -> int:
        """Frames whose play end is <= t (valid until settled)."""
        if t >= self.end:
            return self.sent
        segments = self.segments
        assert segments is not None
        i = len(segments) - 1
        while i >= 0:
            start, first = segments[i]
            if start <= t:
                limit = segments[i + 1][1] if i + 1 < len(segments) else self.sent
                played = first + (t - start) // frame
                return played if played < limit else limit
            i -= 1
        return 0


class Playout:
    """Paced outbound audio of one call.

    Frames are opaque (the session pre-serializes them) and pushed per utterance;
    an utterance's frames are contiguous, so pushing a new id implicitly finishes the
    previous one. ``now`` is ``time.monotonic()`` seconds; internally time is integer
    microseconds so frame boundaries are exact on any call length (no float drift).
    Callbacks passed to :meth:`pull` must not call back into the Playout.
    """

    __slots__ = (
        "_paced", "_lead", "_tick", "_frame", "_frame_ms", "_frames", "_queue", "_tail",
        "_utts", "_marks", "_now", "_play_end", "_block_start", "_last_send",
        "frames_sent", "late_frames", "underruns", "marks_sent", "marks_confirmed", "clears",
        "held", "_gap_forgiven", "_mark_margin", "_mark_due", "_overdue",
    )

    def __init__(self, config: PlayoutConfig = PlayoutConfig(), frame_ms: int = FRAME_MS) -> None:
        self._paced = config.mode == "paced"
        self._lead = config.lead_ms * 1000
        self.held = False
        """While held, nothing is sent (the caller may be taking the floor); see :meth:`hold`."""
        self._gap_forgiven = False
        self._tick = config.tick_ms * 1000
        self._frame = frame_ms * 1000
        self._frame_ms = frame_ms
        self._frames: deque[object] = deque()
        # Utterances with frames or a mark still to send, in order. Only the last can be
        # unfinished, and frames of queue[0] are at the front of _frames.
        self._queue: deque[_Utterance] = deque()
        self._tail: _Utterance | None = None  # the open (unfinished) utterance, if any
        # Creation order: everything that may still play, plus a few recent ones (heard_ms).
        self._utts: dict[int, _Utterance] = {}
        self._marks: dict[str, _Utterance] = {}  # marks sent and not yet echoed nor overdue
        self._mark_margin = config.mark_echo_margin_ms * 1000
        self._mark_due = _NEVER  # the oldest entry of _marks' mark_due: all later ones are later
        self._overdue: dict[str, None] = {}  # marks taken as played without an echo (a late one may come)
        self._now = _LONG_AGO  # latest clock reading seen by pull/interrupt
        self._play_end = _LONG_AGO  # when the last sent frame finishes playing
        self._block_start = _LONG_AGO  # start of the gapless run of audio ending at _play_end
        self._last_send = _LONG_AGO
        self.frames_sent = 0
        self.late_frames = 0
        """Frames sent after their play slot: the carrier had a gap mid-utterance."""
        self.underruns = 0
        """Those gaps where the utterance's queue had run dry (TTS slower than real time)."""
        self.marks_sent = 0
        self.marks_confirmed = 0
        self.clears = 0

    @property
    def queued_frames(self) -> int:
        return len(self._frames)

    # -- input ----------------------------------------------------------------------------

    def push(self, utterance_id: int, frame: object) -> None:
        """Queue one frame. Frames for an interrupted utterance (late TTS output) are dropped."""
        tail = self._tail
        if tail is not None and tail.uid == utterance_id:
            tail.queued += 1
            self._frames.append(frame)
            return
        u = self._utts.get(utterance_id)
        if u is not None:
            if u.interrupted:
                return
            raise ValueError(f"utterance {utterance_id} is already finished")
        u = self._open(utterance_id)
        self._tail = u
        u.queued = 1
        self._frames.append(frame)

    def finish(self, utterance_id: int) -> None:
        """No more frames for this utterance: a mark is due after its last frame (idempotent)."""
        tail = self._tail
        if tail is not None and tail.uid == utterance_id:
            tail.finished = True
            self._tail = None
        elif utterance_id not in self._utts:
            # Nothing was ever pushed (empty TTS output): still confirm it with a mark.
            self._open(utterance_id).finished = True

    def _open(self, uid: int) -> _Utterance:
        tail = self._tail
        if tail is not None:
            tail.finished = True
            self._tail = None
        u = _Utterance(uid)
        utts = self._utts
        utts[uid] = u
        self._queue.append(u)
        # Never forget one that may still be playing: interrupt() must find it. Those
        # are a suffix of creation order (stream order), so stop at the first.
        while len(utts) > _HISTORY:
            old = next(iter(utts.values()))
            if old.heard_ms is None and (old.pending or old.end > self._now):
                break
            del utts[old.uid]
        return u

    # -- output ---------------------------------------------------------------------------

    def pull(self, now: float, send_frame: Callable[[Any], None], send_mark: Callable[[str], None]) -> None:
        """Send what is due: in paced mode every frame whose play start is < now + lead,
        in bulk mode everything; a finished utterance's mark follows its last frame."""
        queue = self._queue
        if not queue or self.held:
            return
        t = self._now = round(now * 1_000_000)
        frame = self._frame
        limit = t + self._lead if self._paced else None
        play_end = self._play_end
        popleft = self._frames.popleft
        sent = 0
        while queue:
            u = queue[0]
            n = u.queued
            if not n:
                if not u.finished:
                    u.starved = True  # a gap before its next frame would be an underrun
                    break
                queue.popleft()
                u.pending = False
                name = f"u{u.uid}"
                # The carrier echoes it once the audio before it has played: by the model, at
                # play_end (at once if nothing is playing). Send order is deadline order.
                u.mark_due = (play_end if play_end > t else t) + self._mark_margin
                marks = self._marks
                marks[name] = u
                if len(marks) > _MAX_MARKS:
                    del marks[next(iter(marks))]
                self._mark_due = next(iter(marks.values())).mark_due
                self.marks_sent += 1
                send_mark(name)
                continue
            start = play_end if play_end > t else t
            if limit is None:
                k = n
            elif start < limit:
                k = (limit - start + frame - 1) // frame  # frames starting before the limit
                if k > n:
                    k = n
            else:
                break
            first = u.sent
            if start > play_end:
                self._block_start = start
                if first:
                    # The carrier ran out mid-utterance: the caller heard a gap (unless we
                    # held the audio on purpose, see hold()).
                    if not self._gap_forgiven:
                        self.late_frames += 1
                        if u.starved:
                            self.underruns += 1
                    u.segments.append((start, first))  # type: ignore[union-attr]
            self._gap_forgiven = False
            if not first:
                u.segments.append((start, 0))  # type: ignore[union-attr]
            u.starved = False
            if k == 1:
                send_frame(popleft())  # the paced steady state: no range object
            else:
                for _ in range(k):
                    send_frame(popleft())
            u.sent = first + k
            u.queued = n - k
            play_end = start + k * frame
            u.end = play_end
            sent += k
            if k < n:
                break  # paced limit reached
        self._play_end = play_end
        if sent:
            self.frames_sent += sent
            self._last_send = t

    def next_wakeup(self, now: float) -> float | None:
        """When :meth:`pull` next has something to send; None until the next push/finish.

        Paced wake-ups are at most one per ``tick_ms`` after a send: without that the
        ``< now + lead`` rule would make the next frame due a microsecond after a burst.
        """
        queue = self._queue
        if not queue or self.held:
            return None
        head = queue[0]
        if not head.queued:
            return now if head.finished else None  # a mark is due, or TTS is behind
        if not self._paced:
            return now
        due = self._play_end - self._lead + 1  # first instant with play_end < t + lead
        tick = self._last_send + self._tick
        if tick > due:
            due = tick
        return now if due <= round(now * 1_000_000) else due / 1_000_000

    # -- carrier feedback -----------------------------------------------------------------

    def interrupt(self, now: float) -> Interruption:
        """Barge-in: drop everything unsent and freeze what was heard. The caller sends ``clear``,
        which discards at the carrier whatever was sent but not yet played."""
        self.held = False
        self._gap_forgiven = False
        t = self._now = round(now * 1_000_000)
        frame, frame_ms = self._frame, self._frame_ms
        target: _Utterance | None = None
        dropped = 0
        for u in self._utts.values():
            if u.heard_ms is not None:
                continue  # confirmed or interrupted before
            if target is None:
                if not (u.queued or not u.finished or u.end > t):
                    continue  # played out completely before now
                target = u
            # The target and everything after it: never to be heard any further.
            u.heard_ms = u.heard_frames(t, frame) * frame_ms
            u.interrupted = True
            u.segments = None
            dropped += u.queued
            u.queued = 0
        for u in self._queue:
            u.pending = False
        self._queue.clear()
        self._frames.clear()
        self._marks.clear()  # their echoes after clear are stale
        self._mark_due = _NEVER
        self._tail = None
        self._play_end = self._block_start = t
        self.clears += 1
        if target is None:
            return Interruption(None, 0, 0, 0)
        return Interruption(target.uid, target.heard_ms, target.sent * frame_ms, dropped)  # type: ignore[arg-type]

    def on_mark(self, name: str, now: float) -> int | None:
        """The carrier echoed a mark: that utterance played to the end. Returns its id, or None
        for unknown or stale marks (already confirmed, or sent before a clear).

        The echo is authoritative, so heard is frozen at everything sent whatever the model
        says about ``now``.
        """
        marks = self._marks
        u = marks.pop(name, None)
        if u is None:
            return None
        self._mark_due = next(iter(marks.values())).mark_due if marks else _NEVER
        self._settle(u)
        self.marks_confirmed += 1
        return u.uid

    def late_echo(self, name: str) -> bool:
        """Was this echoed mark already taken as played by :meth:`take_overdue`? True once per
        mark (it is forgotten); False for any other name."""
        overdue = self._overdue
        if name not in overdue:
            return False
        del overdue[name]
        return True

    def take_overdue(self, now: float) -> int | None:
        """The oldest utterance whose mark echo is overdue (its audio should have played
        ``mark_echo_margin_ms`` ago), now taken as played; None if there is none. Call until
        None. Its echo, if it comes later, is stale for :meth:`on_mark` (see :meth:`late_echo`)."""
        # round(): mark_deadline hands out _mark_due / 1e6, and a clock that stops exactly there
        # (a virtual one) must find it due; 1001 / 1e6 * 1e6 is 1000.9999999999999.
        if self._mark_due > round(now * 1_000_000):  # the per-tick case: one comparison
            return None
        marks = self._marks
        name = next(iter(marks))
        u = marks.pop(name)
        self._mark_due = next(iter(marks.values())).mark_due if marks else _NEVER
        overdue = self._overdue
        overdue[name] = None
        if len(overdue) > _MAX_MARKS:
            del overdue[next(iter(overdue))]
        self._settle(u)
        return u.uid

    @property
    def mark_deadline(self) -> float | None:
        """When :meth:`take_overdue` next has an utterance to give (monotonic seconds), or None."""
        return None if self._mark_due == _NEVER else self._mark_due / 1_000_000

    def _settle(self, u: _Utterance) -> None:
        # Played to the end: heard is frozen at everything sent whatever the model says about now.
        u.heard_ms = u.sent * self._frame_ms
        u.segments = None

    # -- queries --------------------------------------------------------------------------

    def heard_ms(self, utterance_id: int, now: float) -> int:
        """Whole frames of that utterance the caller has heard by ``now``, in ms.

        Raises KeyError for ids never pushed or long forgotten (only a few are kept)."""
        u = self._utts[utterance_id]
        if u.heard_ms is not None:
            return u.heard_ms
        return u.heard_frames(round(now * 1_000_000), self._frame) * self._frame_ms

    def hold(self) -> None:
        """Stop sending without dropping anything: the caller may be starting to talk.

        Audio already sent (at most the lead) still plays; then the caller hears the agent
        pause. :meth:`release` resumes from the next unsent frame, or :meth:`interrupt`
        confirms the barge-in. The gap a hold makes is deliberate, not counted as late."""
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._gap_forgiven = True

    def is_audible(self, now: float) -> bool:
        """Is agent audio playing at the carrier right now?"""
        t = round(now * 1_000_000)
        return self._block_start <= t < self._play_end
