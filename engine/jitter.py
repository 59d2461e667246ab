"""Inbound jitter buffer: Telnyx media frames in, sequence-ordered frames out.

Sans-IO: the caller passes each frame's sequence number, its arrival time and a
sink ``out``; the buffer never reads a clock, sleeps or logs. ``out`` must not
call back into the buffer.

The consumer is a VAD/endpointer and STT, not a loudspeaker, so there is no
playout delay: a frame that arrives in order is released at once. Only a
*missing* frame is waited for, and only until its deadline::

    expected(k) = arrival(j) - (j - k) * frame    # j: nearest later frame held
    deadline(k) = expected(k) + depth             # depth: the current target

after which its slot is concealed (``out(None)``) and the frames behind it
follow. Measuring from a later frame rather than from a fixed timeline means a
burst after a network stall still gets the full depth for its missing frames.
A slot is only concealed once a later frame has arrived: with no later frame
the stream is stalled (or silence-suppressed), which the session handles.

Depth adapts like RFC 3550 interarrival jitter: ``D`` is the change in transit
time (arrival - seq * frame) between consecutive arrivals,
``J += (|D| - J) / 16`` and ``depth = clamp(multiplier * J rounded up to a whole
frame, min, max)``. ``|D|`` is capped at ``max``: a longer delay says nothing
more about the depth to pick, and the cap keeps one stall (or a pause in the
stream) from pinning the depth at ``max`` afterwards. A late frame (one that
arrives after its slot was concealed) raises a floor under the depth to what
would have caught it, rounded up to a frame and held for a while, so repeated
lateness keeps growing the depth up to ``max``. The depth changes only on
arrivals, which keeps :meth:`JitterBuffer.next_deadline` exact.

Discontinuity: a frame more than ``max(500 ms, 25 frames)`` behind or more than
3000 ms ahead of the next expected seq (a carrier restarting its counter, say)
is not waited for or concealed across. The buffer flushes what it holds (gaps
*between* held frames are still concealed: they are real losses), re-anchors
on the new frame and releases it. The skipped range counts as neither late nor
concealed, so a counter jump does not produce thousands of concealed frames.
Output is strictly increasing in seq between discontinuities.

Memory is bounded: at most ``ceil(max_depth / frame) + 50`` slots are held; a
frame further ahead than that forces the oldest missing slots to be concealed.
"""

from __future__ import annotations

from collections.abc import Callable
from math import ceil, inf

from .config import FRAME_MS, JitterConfig

Sink = Callable[[bytes | None], None]
"""Receives each released payload in seq order; ``None`` is a concealed slot."""

_EPS = 1e-6
"""Seconds of float slack so that jitter of exactly n frames does not round up to n + 1."""
_MARGIN_FRAMES = 50
"""Slots held beyond the max depth before the oldest gaps are forced out."""
_RESYNC_BEHIND_MS, _RESYNC_BEHIND_MIN = 500, 25
_RESYNC_AHEAD_MS = 3000
_LATE_HOLD_S = 10.0
"""How long a lateness-raised depth floor holds: late frames come in spells, not alone."""


class JitterStats:
    """Counters for one stream; plain ints, read them at any time."""

    __slots__ = ("received", "duplicate", "late", "reordered", "concealed", "depth_ms", "max_depth_ms")

    received: int  # frames accepted into the buffer (not duplicates, not late)
    duplicate: int  # same seq seen twice, whether still held or already released
    late: int  # arrived after its slot was concealed (or before the anchor); dropped
    reordered: int  # arrived, still in time, with a seq lower than the highest seen
    concealed: int  # slots released as None because the frame never arrived in time
    depth_ms: int  # current target depth: how long a missing frame is waited for
    max_depth_ms: int  # highest target depth so far

    def __init__(self) -> None:
        self._zero()

    def _zero(self) -> None:
        self.received = self.duplicate = self.late = self.reordered = self.concealed = 0
        self.depth_ms = self.max_depth_ms = 0

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in self.__slots__)
        return f"JitterStats({fields})"


class JitterBuffer:
    """Reorders one inbound stream; see the module docstring for the policy."""

    __slots__ = (
        "stats",
        # Fixed per stream.
        "_frame_ms", "_frame_s", "_min_ms", "_max_ms", "_mult", "_d_cap",
        "_window", "_mask", "_lmask", "_behind", "_ahead",
        # Held frames: a ring indexed by seq & _mask, with their arrival times.
        "_buf", "_arr", "_count", "_near",
        # Sequence state.
        "_next", "_origin", "_hi",
        # Concealed slots (seq and expected arrival) for telling late from duplicate.
        "_lost", "_lost_exp",
        # Depth adaptation.
        "_transit", "_j", "_j_lo", "_j_hi", "_depth_s", "_floor_ms", "_floor_until",
    )

    def __init__(self, config: JitterConfig = JitterConfig(), frame_ms: int = FRAME_MS) -> None:
        if frame_ms <= 0:
            raise ValueError("frame_ms must be positive")
        self._frame_ms = frame_ms
        self._frame_s = frame_ms / 1000
        self._min_ms = config.min_depth_ms
        self._max_ms = config.max_depth_ms
        self._mult = config.jitter_multiplier
        self._d_cap = self._max_ms / 1000
        self._window = -(-self._max_ms // frame_ms) + _MARGIN_FRAMES
        cap = 1 << (self._window - 1).bit_length()  # power of two >= window: seq & mask is unique in it
        self._mask = cap - 1
        self._buf: list[bytes | None] = [None] * cap
        self._arr = [0.0] * cap
        self._behind = max(_RESYNC_BEHIND_MS // frame_ms, _RESYNC_BEHIND_MIN)
        self._ahead = _RESYNC_AHEAD_MS // frame_ms
        self._lmask = (1 << self._behind.bit_length()) - 1  # ring longer than the behind window
        self.stats = JitterStats()
        self.reset()

    @property
    def held(self) -> int:
        """Frames currently held behind a gap."""
        return self._count

    def reset(self) -> None:
        """Forget the stream: held frames are dropped (not released), counters zeroed."""
        buf = self._buf
        for i in range(len(buf)):
            buf[i] = None
        self._count = 0
        self._near = 0
        self._next: int | None = None
        self._origin = self._hi = 0
        self._lost: list[int | None] = [None] * (self._lmask + 1)
        self._lost_exp = [0.0] * (self._lmask + 1)
        self._transit = 0.0
        self._j = 0.0
        self._floor_ms = 0
        self._floor_until = inf
        self.stats._zero()
        self._retarget(0.0)

    def push(self, seq: int, payload: bytes, now: float, out: Sink) -> None:
        """Insert one frame (``now``: monotonic seconds of arrival) and release, in strict
        seq order, every frame that is now releasable; ``out(None)`` is a concealed slot."""
        # Fast path: the expected frame with nothing held. The jitter update is inlined
        # because this runs 50 times a second per call.
        if seq == self._next and not self._count:
            self._next = seq + 1
            self.stats.received += 1
            t = now - seq * self._frame_s
            d = t - self._transit
            self._transit = t
            if d < 0.0:
                d = -d
            if d > self._d_cap:
                d = self._d_cap
            j = self._j
            j += (d - j) * 0.0625
            self._j = j
            if not self._j_lo < j <= self._j_hi or now > self._floor_until:
                self._retarget(now)
            out(payload)
            return
        self._push_slow(seq, payload, now, out)

    def poll(self, now: float, out: Sink) -> None:
        """Release what became due with time alone: a missing frame whose deadline has
        passed is concealed (``out(None)``) and the held frames behind it follow."""
        if self._count:
            self._drain(now, out)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` would next release something; ``None`` if nothing is held."""
        if not self._count:
            return None
        return self._expected() + self._depth_s

    # -- internals -----------------------------------------------------------

    def _push_slow(self, seq: int, payload: bytes, now: float, out: Sink) -> None:
        st = self.stats
        nxt = self._next
        if nxt is None or not -self._behind <= seq - nxt <= self._ahead:
            if nxt is not None:  # discontinuity: empty the old stream, skip the rest
                while self._count:
                    self._conceal(self._expected(), out)
            self._anchor(seq, now)
            st.received += 1
            out(payload)
            return
        # Anchored from here on; _expected, _conceal and _run are only reached anchored. The asserts
        # say so to the type checker on the loss and reorder paths, never on the per-frame fast path.
        assert self._next is not None

        if seq < nxt:
            i = seq & self._lmask
            if seq >= self._origin and self._lost[i] != seq:
                st.duplicate += 1  # released as a real frame already
            else:
                st.late += 1
                if seq >= self._origin:  # its slot was concealed: the depth was too short
                    self._lost[i] = None  # a second copy is a duplicate
                    self._observe(seq, now)
                    self._on_late(now - self._lost_exp[i], now)
        elif seq - nxt < self._window and self._buf[seq & self._mask] is not None:
            st.duplicate += 1
        else:
            st.received += 1
            if seq < self._hi:
                st.reordered += 1
            else:
                self._hi = seq
            self._observe(seq, now)
            while seq - self._next >= self._window:  # bounded memory: force out the oldest gaps
                self._conceal(self._expected() if self._count else now - (seq - self._next) * self._frame_s, out)
            if seq == self._next:
                self._next = seq + 1
                out(payload)
                if self._count:
                    self._run(out)
            else:
                i = seq & self._mask
                self._buf[i] = payload
                self._arr[i] = now
                if not self._count or seq < self._near:
                    self._near = seq
                self._count += 1
        if self._count:
            self._drain(now, out)

    def _anchor(self, seq: int, now: float) -> None:
        self._next = seq + 1
        self._origin = self._hi = seq
        self._transit = now - seq * self._frame_s
        self._lost = [None] * (self._lmask + 1)
        self._lost_exp = [0.0] * (self._lmask + 1)

    def _expected(self) -> float:
        """When the head (missing) slot should have arrived, judged by the nearest later frame."""
        near, nxt = self._near, self._next
        assert nxt is not None
        return self._arr[near & self._mask] - (near - nxt) * self._frame_s

    def _drain(self, now: float, out: Sink) -> None:
        while self._count:
            expected = self._expected()
            if now < expected + self._depth_s:  # same arithmetic as next_deadline()
                return
            self._conceal(expected, out)

    def _conceal(self, expected: float, out: Sink) -> None:
        k = self._next
        assert k is not None
        i = k & self._lmask
        self._lost[i] = k
        self._lost_exp[i] = expected
        self._next = k + 1
        self.stats.concealed += 1
        out(None)
        if self._count and self._near == k + 1:
            self._run(out)

    def _run(self, out: Sink) -> None:
        """Release the held frames that now follow on directly, then find the next one held."""
        buf = self._buf
        mask = self._mask
        n = self._next
        assert n is not None
        p = buf[n & mask]
        while p is not None:
            buf[n & mask] = None
            n += 1
            self._next = n
            self._count -= 1
            out(p)
            p = buf[n & mask]
        if self._count:
            n += 1
            while buf[n & mask] is None:
                n += 1
            self._near = n

    def _observe(self, seq: int, now: float) -> None:
        """RFC 3550 jitter update for an arrival off the fast path (same as the inlined one)."""
        t = now - seq * self._frame_s
        d = abs(t - self._transit)
        self._transit = t
        j = self._j
        j += (min(d, self._d_cap) - j) * 0.0625
        self._j = j
        if not self._j_lo < j <= self._j_hi or now > self._floor_until:
            self._retarget(now)

    def _on_late(self, lateness: float, now: float) -> None:
        f = self._frame_ms
        need = ceil((lateness - _EPS) * 1000 / f) * f  # the depth that would have caught it
        floor = self._floor_ms if now <= self._floor_until else 0  # a held floor only grows
        self._floor_ms = min(max(floor, need), self._max_ms)
        self._floor_until = now + _LATE_HOLD_S
        self._retarget(now)

    def _retarget(self, now: float) -> None:
        """Recompute the depth and the band of J within which it stays the same."""
        if now > self._floor_until:
            self._floor_ms = 0
            self._floor_until = inf
        f_s = self._frame_s
        mult = self._mult
        n = max(ceil((mult * self._j - _EPS) / f_s), 0)
        depth = n * self._frame_ms
        # The fast path recomputes only when J leaves (lo, hi]; open the band where clamped.
        self._j_lo = ((n - 1) * f_s + _EPS) / mult if depth > self._min_ms else -1.0
        self._j_hi = (n * f_s + _EPS) / mult if depth < self._max_ms else inf
        depth = max(min(max(depth, self._min_ms), self._max_ms), self._floor_ms)
        self._depth_s = depth / 1000
        st = self.stats
        st.depth_ms = depth
        if depth > st.max_depth_ms:
            st.max_depth_ms = depth
