"""Jitter buffer: an injected clock (plain floats), no sleeps.

Payloads are the seq as ASCII, so the output can be mapped back to sequence numbers.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import JitterConfig
from engine.jitter import JitterBuffer

F = 0.020  # one frame, seconds


def p(seq: int) -> bytes:
    return b"%d" % seq


def seqs(out: list[bytes | None]) -> list[int | None]:
    return [None if x is None else int(x) for x in out]


def fixed(depth_ms: int) -> JitterBuffer:
    """A buffer whose depth cannot move: min == max."""
    return JitterBuffer(JitterConfig(min_depth_ms=depth_ms, max_depth_ms=depth_ms))


def test_in_order_is_released_by_the_same_push() -> None:
    jb = JitterBuffer()
    for i in range(100):
        out: list[bytes | None] = []
        jb.push(1000 + i, p(1000 + i), i * F, out.append)
        assert out == [p(1000 + i)]  # zero added delay
        assert jb.next_deadline() is None
    s = jb.stats
    assert (s.received, s.duplicate, s.late, s.reordered, s.concealed) == (100, 0, 0, 0, 0)
    assert jb.held == 0


def test_swap_is_released_in_order_and_counted_reordered() -> None:
    jb = fixed(40)
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    jb.push(2, p(2), 2 * F, out.append)
    assert seqs(out) == [0]  # 2 waits for 1
    assert jb.held == 1
    jb.push(1, p(1), 2 * F + 0.005, out.append)
    assert seqs(out) == [0, 1, 2]
    assert jb.stats.reordered == 1
    assert jb.stats.concealed == 0
    assert jb.next_deadline() is None


def test_depth_zero_conceals_a_gap_as_soon_as_a_later_frame_arrives() -> None:
    jb = JitterBuffer()  # min 0, and perfectly timed arrivals give zero jitter
    assert jb.stats.depth_ms == 0
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    jb.push(2, p(2), 2 * F, out.append)
    assert seqs(out) == [0, None, 2]
    assert jb.stats.concealed == 1
    assert jb.stats.reordered == 0  # a gap is not a reorder


def test_duplicates_are_counted_and_never_released_twice() -> None:
    jb = fixed(60)
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    jb.push(0, p(0), 0.001, out.append)  # duplicate of a released frame
    jb.push(2, p(2), 2 * F, out.append)
    jb.push(2, p(2), 2 * F + 0.001, out.append)  # duplicate of a held frame
    assert seqs(out) == [0]
    assert jb.held == 1
    jb.push(1, p(1), 2 * F + 0.002, out.append)
    jb.push(1, p(1), 2 * F + 0.003, out.append)
    jb.push(2, p(2), 2 * F + 0.004, out.append)
    jb.poll(100.0, out.append)
    assert seqs(out) == [0, 1, 2]
    assert jb.stats.duplicate == 4
    assert jb.stats.received == 3


def test_gap_is_concealed_only_at_its_deadline_and_only_once() -> None:
    jb = fixed(40)
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    jb.push(2, p(2), 0.040, out.append)
    # Frame 1 should have arrived at 0.040 - 0.020; deadline = that + 40 ms.
    deadline = jb.next_deadline()
    assert deadline == pytest.approx(0.060)
    jb.poll(0.059, out.append)
    assert seqs(out) == [0]
    jb.poll(0.060, out.append)
    assert seqs(out) == [0, None, 2]
    jb.poll(0.080, out.append)
    jb.poll(10.0, out.append)
    assert seqs(out) == [0, None, 2]
    assert jb.stats.concealed == 1
    assert jb.next_deadline() is None


def test_push_also_releases_what_is_overdue() -> None:
    jb = fixed(40)
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    jb.push(2, p(2), 0.040, out.append)
    jb.push(3, p(3), 0.061, out.append)  # past 1's deadline, no poll in between
    assert seqs(out) == [0, None, 2, 3]


def test_next_deadline_is_exactly_when_poll_releases() -> None:
    jb = fixed(60)
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    jb.push(3, p(3), 0.073, out.append)  # 1 and 2 missing
    d1 = jb.next_deadline()
    assert d1 is not None
    jb.poll(d1 - 1e-9, out.append)
    assert seqs(out) == [0]
    jb.poll(d1, out.append)
    assert seqs(out) == [0, None]  # one slot at a time: 2 is due a frame later
    d2 = jb.next_deadline()
    assert d2 == pytest.approx(d1 + F)
    jb.poll(d2 - 1e-9, out.append)
    assert seqs(out) == [0, None]
    jb.poll(d2, out.append)
    assert seqs(out) == [0, None, None, 3]
    assert jb.next_deadline() is None


def test_late_arrival_after_concealment_is_dropped_and_counted() -> None:
    jb = fixed(20)
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    jb.push(2, p(2), 0.040, out.append)
    jb.poll(1.0, out.append)
    jb.push(1, p(1), 1.001, out.append)
    assert seqs(out) == [0, None, 2]
    assert jb.stats.late == 1
    jb.push(1, p(1), 1.002, out.append)  # a second copy is a duplicate, not late again
    assert jb.stats.late == 1
    assert jb.stats.duplicate == 1
    jb.push(3, p(3), 1.003, out.append)
    assert seqs(out) == [0, None, 2, 3]


def test_frame_older_than_the_anchor_is_late() -> None:
    jb = JitterBuffer()
    out: list[bytes | None] = []
    jb.push(500, p(500), 0.0, out.append)
    jb.push(499, p(499), 0.001, out.append)
    assert seqs(out) == [500]
    assert (jb.stats.late, jb.stats.duplicate) == (1, 0)


def test_lateness_raises_the_depth_to_what_would_have_caught_it() -> None:
    jb = JitterBuffer(JitterConfig(min_depth_ms=0, max_depth_ms=100))
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    jb.push(2, p(2), 0.040, out.append)
    assert jb.stats.depth_ms == 0 and jb.stats.concealed == 1
    jb.push(1, p(1), 0.100, out.append)  # 80 ms after it should have come
    assert jb.stats.late == 1
    assert jb.stats.depth_ms == 80
    # The floor holds for a while, then the smooth stream brings the depth back down.
    t, seq = 0.100, 3
    while t < 9.0:
        t += F
        jb.push(seq, p(seq), t, out.append)
        seq += 1
    assert jb.stats.depth_ms == 80  # J is back near zero by now; the floor is what holds
    while t < 12.0:
        t += F
        jb.push(seq, p(seq), t, out.append)
        seq += 1
    assert jb.stats.depth_ms == 0
    assert jb.stats.max_depth_ms == 80


def test_repeated_lateness_grows_the_depth_up_to_max() -> None:
    jb = JitterBuffer(JitterConfig(min_depth_ms=0, max_depth_ms=100))
    out: list[bytes | None] = []
    seq, t = 0, 0.0
    jb.push(seq, p(seq), t, out.append)
    depths = [jb.stats.depth_ms]
    for _ in range(8):
        # seq+1 is lost for now; seq+2 arrives on time; seq+1 turns up 1 ms after its deadline.
        jb.push(seq + 2, p(seq + 2), t + 2 * F, out.append)
        deadline = jb.next_deadline()
        if deadline is not None:
            jb.poll(deadline, out.append)
            t = deadline
        jb.push(seq + 1, p(seq + 1), t + 0.001, out.append)
        seq, t = seq + 2, t + 0.001
        depths.append(jb.stats.depth_ms)
    assert jb.stats.late == 8
    assert depths == sorted(depths)  # never shrinks while lateness keeps happening
    assert depths[-1] == 100
    assert all(0 <= d <= 100 for d in depths)
    assert len(set(depths)) >= 4  # grew in steps, not one jump


def test_depth_follows_rfc3550_jitter_rounded_up_to_a_frame() -> None:
    # Arrivals alternate on time / 10 ms late: |D| = 10 ms every frame, so J -> 10 ms,
    # 3 x J -> just under 30 ms, rounded up to 40 ms.
    jb = JitterBuffer(JitterConfig(min_depth_ms=0, max_depth_ms=100, jitter_multiplier=3.0))
    out: list[bytes | None] = []
    for i in range(300):
        jb.push(i, p(i), i * F + (0.010 if i % 2 else 0.0), out.append)
    assert jb.stats.depth_ms == 40
    assert seqs(out) == list(range(300))  # in order, however jittery: no delay
    # Smooth arrivals again: J decays and the depth follows it down.
    for i in range(300, 600):
        jb.push(i, p(i), i * F, out.append)
    assert jb.stats.depth_ms == 0
    assert jb.stats.max_depth_ms == 40


def test_reordered_arrivals_feed_the_jitter_estimate() -> None:
    # Every pair swapped and delivered together when the first of the pair was due:
    # transit swings by one frame every arrival, so J -> 20 ms and 3 x J -> 60 ms.
    jb = JitterBuffer(JitterConfig(min_depth_ms=40, max_depth_ms=100))
    out: list[bytes | None] = []
    for k in range(100):
        t = 2 * k * F
        jb.push(2 * k + 1, p(2 * k + 1), t + 0.001, out.append)
        jb.push(2 * k, p(2 * k), t + 0.001, out.append)
    assert seqs(out) == list(range(1, 200))
    # The very first frame anchors, so 0 is late; every later swap is caught.
    assert (jb.stats.reordered, jb.stats.concealed, jb.stats.late) == (99, 0, 1)
    assert jb.stats.depth_ms == 60


def test_a_pause_in_the_stream_does_not_pin_the_depth_at_max() -> None:
    jb = JitterBuffer(JitterConfig(min_depth_ms=0, max_depth_ms=60))
    out: list[bytes | None] = []
    for i in range(50):
        jb.push(i, p(i), i * F, out.append)
    jb.push(50, p(50), 50 * F + 2.0, out.append)  # 2 s silence-suppressed, then in order again
    # |D| = 2 s is capped at the max depth: J grows by 60/16 ms, 3 x J rounds up to one frame.
    assert jb.stats.depth_ms == 20
    assert seqs(out) == list(range(51))


@pytest.mark.parametrize(("lo", "hi", "expect"), [(0, 30, 30), (60, 100, 60), (0, 20, 20)])
def test_depth_is_clamped_to_config(lo: int, hi: int, expect: int) -> None:
    jb = JitterBuffer(JitterConfig(min_depth_ms=lo, max_depth_ms=hi))
    assert jb.stats.depth_ms == lo
    out: list[bytes | None] = []
    for i in range(300):
        jb.push(i, p(i), i * F + (0.010 if i % 2 else 0.0), out.append)
        assert lo <= jb.stats.depth_ms <= hi
    assert jb.stats.depth_ms == expect


def test_depth_adapts_upward_under_random_jitter_and_stays_in_bounds() -> None:
    rng = random.Random(7)
    jb = JitterBuffer(JitterConfig(min_depth_ms=10, max_depth_ms=80))
    assert jb.stats.depth_ms == 10
    out: list[bytes | None] = []
    arrivals = sorted((i * F + rng.uniform(0, 0.050), i) for i in range(500))
    for t, i in arrivals:
        jb.push(i, p(i), t, out.append)
        assert 10 <= jb.stats.depth_ms <= 80
    jb.poll(1e6, out.append)
    assert jb.stats.depth_ms > 10
    assert jb.stats.max_depth_ms >= jb.stats.depth_ms
    assert jb.stats.reordered > 0


def test_stalled_stream_conceals_nothing() -> None:
    jb = fixed(40)
    out: list[bytes | None] = []
    for i in range(5):
        jb.push(i, p(i), i * F, out.append)
    assert jb.next_deadline() is None
    jb.poll(1000.0, out.append)  # the caller went quiet: no later frame, no gap
    assert jb.stats.concealed == 0
    jb.push(5, p(5), 1000.0, out.append)  # resumes where it left off
    assert seqs(out) == list(range(6))
    assert jb.stats.concealed == 0


def test_nothing_is_concealed_past_the_last_frame_received() -> None:
    jb = fixed(40)
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    jb.push(2, p(2), 0.040, out.append)
    jb.poll(1000.0, out.append)
    assert seqs(out) == [0, None, 2]  # slot 1 had a later frame; 3, 4, ... do not
    assert jb.stats.concealed == 1
    assert jb.next_deadline() is None


def test_counter_jump_ahead_resyncs_without_mass_concealment() -> None:
    jb = fixed(60)
    out: list[bytes | None] = []
    for i in range(10):
        jb.push(i, p(i), i * F, out.append)
    jb.push(11, p(11), 11 * F, out.append)  # 10 missing, 11 held
    jb.push(90_000, p(90_000), 11 * F + 0.001, out.append)
    # The held frame is flushed (its gap is a real loss), then the new stream starts at once.
    assert seqs(out) == [*range(10), None, 11, 90_000]
    jb.push(90_001, p(90_001), 11 * F + 0.021, out.append)
    assert seqs(out)[-1] == 90_001
    assert jb.stats.concealed == 1
    assert jb.stats.late == 0
    assert jb.stats.received == 13


def test_counter_restart_behind_resyncs() -> None:
    jb = JitterBuffer()
    out: list[bytes | None] = []
    for i in range(1000, 1100):
        jb.push(i, p(i), (i - 1000) * F, out.append)
    jb.push(1100 - 25, p(1075), 2.0, out.append)  # within the window: a duplicate
    assert jb.stats.duplicate == 1
    jb.push(1100 - 26, p(1074), 2.01, out.append)  # beyond it: counted nothing, resync
    jb.push(3, p(3), 2.02, out.append)  # carrier restarted at 3: a discontinuity too
    jb.push(4, p(4), 2.04, out.append)
    assert seqs(out)[-3:] == [1074, 3, 4]
    assert (jb.stats.duplicate, jb.stats.late, jb.stats.concealed) == (1, 0, 0)


def test_resync_threshold_ahead_is_3000_ms() -> None:
    within = JitterBuffer()
    out: list[bytes | None] = []
    within.push(0, p(0), 0.0, out.append)
    within.push(151, p(151), 0.0, out.append)  # 150 frames after the next expected: a gap
    assert within.stats.concealed == 150
    assert seqs(out) == [0, *[None] * 150, 151]

    beyond = JitterBuffer()
    out = []
    beyond.push(0, p(0), 0.0, out.append)
    beyond.push(152, p(152), 0.0, out.append)  # 151 frames ahead: a discontinuity
    assert beyond.stats.concealed == 0
    assert seqs(out) == [0, 152]


def test_memory_is_bounded_by_max_depth_plus_margin() -> None:
    jb = fixed(60)  # 3 frames of depth + 50 margin
    limit = 3 + 50
    out: list[bytes | None] = []
    jb.push(0, p(0), 0.0, out.append)
    for i in range(2, 140):  # a burst with 1 missing: nothing is due by time alone
        jb.push(i, p(i), 0.0, out.append)
        assert jb.held <= limit
    assert seqs(out)[:3] == [0, None, 2]  # the oldest gap was forced out
    jb.poll(1e6, out.append)
    assert seqs(out) == [0, None, *range(2, 140)]
    assert jb.stats.concealed == 1


def test_reset_forgets_the_stream() -> None:
    jb = fixed(40)
    out: list[bytes | None] = []
    stats = jb.stats
    jb.push(0, p(0), 0.0, out.append)
    jb.push(2, p(2), 0.040, out.append)
    jb.reset()
    assert jb.stats is stats  # references held elsewhere stay valid
    assert (stats.received, stats.concealed, jb.held) == (0, 0, 0)
    assert jb.next_deadline() is None
    jb.poll(1e6, out.append)
    jb.push(7, p(7), 5.0, out.append)  # a new anchor, released at once
    assert seqs(out) == [0, 7]


def test_poll_and_deadline_on_an_empty_buffer() -> None:
    jb = JitterBuffer()
    out: list[bytes | None] = []
    assert jb.next_deadline() is None
    jb.poll(123.0, out.append)
    assert out == []


# -- properties ----------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[JitterConfig, list[tuple[float, str, int]]]:
    lo = draw(st.integers(0, 100))
    hi = draw(st.integers(lo, 200))
    mult = draw(st.floats(0.5, 6.0))
    start = draw(st.integers(0, 2**31))
    # At most 25 frames so nothing can fall far enough behind to look like a discontinuity.
    n = draw(st.integers(1, 25))
    events: list[tuple[float, str, int]] = []
    for i in range(n):
        if i > 0 and draw(st.integers(0, 3)) == 0:
            continue  # lost
        for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):  # duplicates
            events.append((i * F + draw(st.floats(0.0, 0.3)), "push", start + i))
    for _ in range(draw(st.integers(0, 15))):
        events.append((draw(st.floats(0.0, n * F + 0.4)), "poll", 0))
    # Arrival-time order; events at the same instant in a random order.
    tiebreak = draw(st.permutations(range(len(events))))
    order = sorted(range(len(events)), key=lambda k: (events[k][0], tiebreak[k]))
    return JitterConfig(min_depth_ms=lo, max_depth_ms=hi, jitter_multiplier=mult), [events[k] for k in order]


class Recorder:
    """Maps the output back to slots: a real frame carries its seq, None fills the next slot."""

    def __init__(self) -> None:
        self.released: list[int] = []
        self.concealed: list[int] = []
        self.last: int | None = None  # the last slot released, real or concealed
        self.highest_pushed: int | None = None

    def take(self, out: list[bytes | None]) -> None:
        for x in out:
            if x is None:
                assert self.last is not None
                self.last += 1
                assert self.highest_pushed is not None
                assert self.last < self.highest_pushed, "concealed without a later frame"
                self.concealed.append(self.last)
            else:
                s = int(x)
                assert self.last is None or s == self.last + 1, "output skipped or repeated a slot"
                self.released.append(s)
                self.last = s


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_output_is_ordered_unique_and_accounted(
    scenario: tuple[JitterConfig, list[tuple[float, str, int]]],
) -> None:
    config, events = scenario
    jb = JitterBuffer(config)
    rec = Recorder()
    pushes = 0

    for now, kind, seq in events:
        out: list[bytes | None] = []
        if kind == "push":
            pushes += 1
            rec.highest_pushed = seq if rec.highest_pushed is None else max(rec.highest_pushed, seq)
            next_expected = None if rec.last is None else rec.last + 1
            jb.push(seq, p(seq), now, out.append)
            if next_expected is None or seq == next_expected:
                assert out[:1] == [p(seq)], "the next expected frame was delayed"
        else:
            deadline = jb.next_deadline()
            jb.poll(now, out.append)
            if deadline is None or now < deadline:
                assert out == [], "poll released before next_deadline()"
            else:
                assert out, "poll at next_deadline() released nothing"
        rec.take(out)
        assert config.min_depth_ms <= jb.stats.depth_ms <= config.max_depth_ms
        assert jb.stats.depth_ms <= jb.stats.max_depth_ms <= config.max_depth_ms

    out = []
    jb.poll(1e9, out.append)
    rec.take(out)
    assert out[-1:] != [None], "concealed a trailing slot"

    s = jb.stats
    anchor = next(seq for _, kind, seq in events if kind == "push")
    pushed = {seq for _, kind, seq in events if kind == "push"}
    released = rec.released
    assert len(released) == len(set(released)), "a frame was released twice"
    assert released[0] == anchor
    assert sorted(released + rec.concealed) == list(range(anchor, max(released) + 1))
    assert set(released) <= pushed
    assert len(pushed - set(released)) <= s.late, "a frame went missing without being counted late"
    assert s.received + s.duplicate + s.late == pushes
    assert s.received == len(released)
    assert s.concealed == len(rec.concealed)
    assert jb.held == 0 and jb.next_deadline() is None


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(-(2**40), 2**40),
    jumps=st.lists(st.integers(-(2**32), 2**32).filter(lambda j: j > 151 or j < -26), max_size=4),
    per_segment=st.integers(1, 30),
)
def test_property_counter_jumps_never_mass_conceal(start: int, jumps: list[int], per_segment: int) -> None:
    jb = JitterBuffer()
    out: list[bytes | None] = []
    seq, t, pushes = start, 0.0, 0
    for jump in [0, *jumps]:
        seq += jump
        for _ in range(per_segment):
            jb.push(seq, p(seq), t, out.append)
            seq, t, pushes = seq + 1, t + F, pushes + 1
    assert len(out) == pushes  # each frame out exactly once, no concealment
    assert None not in out
    assert jb.stats.received == pushes
    assert (jb.stats.concealed, jb.stats.late, jb.stats.duplicate) == (0, 0, 0)
