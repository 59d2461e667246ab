"""Reframer and Playout on virtual time: every ``now`` is injected, nothing sleeps.

The timing oracle is the carrier model written out longhand: a frame sent at ``s``
plays from ``max(s, previous end)`` for 20 ms; ``clear`` discards what has not played.
Virtual times are integer microseconds turned into seconds at the API boundary.
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codecs import L16, PCMU
from engine.config import PlayoutConfig
from engine.playout import Interruption, Playout, Reframer

T0 = 1000.0  # a realistic monotonic reading, far from 0
MS = 0.001
LEAD = 80


def at(ms: float) -> float:
    return T0 + ms * MS


class Carrier:
    """Records what a Playout sends and when, and plays it like the carrier would."""

    def __init__(self) -> None:
        self.now = T0
        self.events: list[tuple[str, object]] = []
        self.frames: list[tuple[object, float]] = []  # (frame, play start in ms after T0)
        self.play_end = float("-inf")

    def pull(self, playout: Playout, ms: float) -> list[tuple[str, object]]:
        self.now = at(ms)
        before = len(self.events)
        playout.pull(self.now, self.send_frame, self.send_mark)
        return self.events[before:]

    def send_frame(self, frame: object) -> None:
        now_ms = round((self.now - T0) / MS, 3)
        start = max(now_ms, self.play_end)
        self.play_end = start + 20
        self.frames.append((frame, start))
        self.events.append(("frame", frame))

    def send_mark(self, name: str) -> None:
        self.events.append(("mark", name))


def frames_of(events: list[tuple[str, object]]) -> list[object]:
    return [f for kind, f in events if kind == "frame"]


def fill(playout: Playout, uid: int, n: int, finish: bool = True) -> list[tuple[int, int]]:
    frames = [(uid, i) for i in range(n)]
    for f in frames:
        playout.push(uid, f)
    if finish:
        playout.finish(uid)
    return frames


# -- Reframer --------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 159, 160, 161, 1000])
@pytest.mark.parametrize("codec", [PCMU, L16], ids=lambda c: c.encoding)
def test_reframer_exact_frames_and_padded_flush(chunk: int, codec) -> None:
    fb = codec.frame_bytes
    stream = bytes((i * 7 + 3) % 251 for i in range(fb * 6 + 37))
    r = Reframer(fb, codec.silence_byte)
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        got = r.feed(stream[i : i + chunk])
        assert all(type(f) is bytes and len(f) == fb for f in got)
        out += got
        # No frame is held back once complete.
        assert len(out) == min(i + chunk, len(stream)) // fb
    assert b"".join(out) == stream[: fb * 6]
    tail = r.flush()
    assert tail == stream[fb * 6 :] + bytes([codec.silence_byte]) * (fb - 37)
    assert r.flush() is None


def test_reframer_flush_on_boundary_and_reset() -> None:
    r = Reframer(160, 0xFF)
    assert r.feed(b"") == []
    assert r.feed(b"\x01" * 320) == [b"\x01" * 160] * 2
    assert r.flush() is None
    assert r.feed(b"\x02" * 100) == []
    r.reset()
    assert r.flush() is None
    assert r.feed(b"\x03" * 160) == [b"\x03" * 160]  # nothing of the dropped remainder leaks in


def test_reframer_accepts_buffers_and_copies_frames() -> None:
    r = Reframer(4, 0)
    data = bytearray(b"abcdefghij")
    frames = r.feed(data) + r.feed(memoryview(b"klmnop"))
    data[:] = b"X" * 10  # frames must not alias the caller's buffer
    assert frames == [b"abcd", b"efgh", b"ijkl", b"mnop"]
    assert all(type(f) is bytes for f in frames)
    assert r.flush() is None
    with pytest.raises(ValueError):
        Reframer(0, 0)


# -- pacing ----------------------------------------------------------------------------


def test_paced_sends_lead_then_one_frame_per_tick() -> None:
    p, c = Playout(), Carrier()
    frames = fill(p, 1, 10)
    assert frames_of(c.pull(p, 0)) == frames[:4]  # 80 ms lead: starts 0, 20, 40, 60
    assert c.pull(p, 0) == []
    for step in range(1, 7):
        now = 20 * step
        got = c.pull(p, now)
        assert frames_of(got) == [frames[3 + step]]
        assert c.play_end - now == LEAD  # never more than lead ahead
    assert c.events[-1] == ("mark", "u1")
    assert c.pull(p, 200) == []
    assert p.frames_sent == 10 and p.marks_sent == 1 and p.late_frames == 0
    assert p.queued_frames == 0
    # The paced rule itself: every frame starts less than lead after it was sent.
    sent_at = [0] * 4 + [20 * s for s in range(1, 7)]
    assert all(start < t + LEAD for (_, start), t in zip(c.frames, sent_at, strict=False))


@pytest.mark.parametrize("lead_ms, burst", [(20, 1), (40, 2), (100, 5)])
def test_paced_burst_follows_lead(lead_ms: int, burst: int) -> None:
    p, c = Playout(PlayoutConfig(lead_ms=lead_ms)), Carrier()
    fill(p, 1, 10)
    assert len(frames_of(c.pull(p, 0))) == burst
    assert len(frames_of(c.pull(p, 20))) == 1


def test_paced_off_grid_pull_keeps_start_within_lead() -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 20)
    c.pull(p, 0)
    c.pull(p, 33)  # limit 113: frames starting at 80 and 100
    assert len(c.frames) == 6
    c.pull(p, 33.5)
    assert len(c.frames) == 6


def test_bulk_sends_everything_at_once() -> None:
    p, c = Playout(PlayoutConfig(mode="bulk")), Carrier()
    frames = fill(p, 1, 50)
    assert c.pull(p, 0) == [("frame", f) for f in frames] + [("mark", "u1")]
    assert p.next_wakeup(at(0)) is None
    assert p.is_audible(at(999.9)) and not p.is_audible(at(1000))
    assert p.heard_ms(1, at(500)) == 500
    assert p.heard_ms(1, at(5000)) == 1000


def test_marks_follow_last_frame_in_order() -> None:
    p, c = Playout(PlayoutConfig(mode="bulk")), Carrier()
    a, b = fill(p, 1, 3), fill(p, 2, 2)
    p.finish(7)  # an empty utterance still gets its mark
    expected = [*(("frame", f) for f in a), ("mark", "u1"), *(("frame", f) for f in b), ("mark", "u2"), ("mark", "u7")]
    assert c.pull(p, 0) == expected
    assert c.pull(p, 100) == []
    assert p.marks_sent == 3


def test_mark_waits_for_finish_and_is_sent_once() -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 2, finish=False)
    c.pull(p, 0)
    assert p.next_wakeup(at(1)) is None  # TTS behind: nothing to do until the next push
    p.finish(1)
    p.finish(1)  # idempotent
    assert p.next_wakeup(at(1)) == at(1)
    assert c.pull(p, 1) == [("mark", "u1")]
    assert c.pull(p, 2) == []
    assert p.marks_sent == 1


def test_new_utterance_implicitly_finishes_previous() -> None:
    p, c = Playout(PlayoutConfig(mode="bulk")), Carrier()
    fill(p, 1, 1, finish=False)
    fill(p, 2, 1, finish=False)
    assert [e[0] for e in c.pull(p, 0)] == ["frame", "mark", "frame"]
    assert c.events[1] == ("mark", "u1")
    with pytest.raises(ValueError):
        p.push(1, "late")


def test_on_mark_maps_back_once() -> None:
    p, c = Playout(PlayoutConfig(mode="bulk")), Carrier()
    fill(p, 41, 3)
    c.pull(p, 0)
    assert p.on_mark("nonsense", at(60)) is None
    assert p.on_mark("u999", at(60)) is None
    assert p.on_mark("u41", at(60)) == 41
    assert p.on_mark("u41", at(61)) is None  # duplicate echo
    assert p.marks_confirmed == 1
    assert p.heard_ms(41, at(60)) == 60


# -- a mark echo that never comes ----------------------------------------------------------

MARGIN = 250


def drain(p: Playout, ms: float) -> list[int]:
    out = []
    while (uid := p.take_overdue(at(ms))) is not None:
        out.append(uid)
    return out


def sent_paced(p: Playout, c: Carrier, until_ms: int) -> None:
    for ms in range(0, until_ms + 1, 20):
        c.pull(p, ms)


def test_an_unechoed_mark_is_taken_as_played_margin_after_its_audio_ended() -> None:
    p, c = Playout(PlayoutConfig(mark_echo_margin_ms=MARGIN)), Carrier()
    fill(p, 1, 10)  # 200 ms of audio, paced: plays 0 .. 200 ms
    assert p.mark_deadline is None
    sent_paced(p, c, 200)
    assert ("mark", "u1") in c.events
    assert p.mark_deadline == pytest.approx(at(200 + MARGIN))
    assert drain(p, 200 + MARGIN - 0.01) == []
    assert drain(p, 200 + MARGIN) == [1]
    assert drain(p, 5000) == [] and p.mark_deadline is None  # once
    assert p.heard_ms(1, at(5000)) == 200 and p.marks_confirmed == 0
    # The late echo only confirms: no second callback, recognised once as late.
    assert p.on_mark("u1", at(2000)) is None
    assert p.late_echo("u1") and not p.late_echo("u1") and not p.late_echo("u9")


def test_a_mark_is_overdue_at_the_very_deadline_it_reports() -> None:
    # A clock that stops exactly at mark_deadline (the virtual loop) must find the mark due, or
    # the send loop wakes at that instant for ever. 1001 µs / 1e6 * 1e6 is 1000.9999999999999,
    # and many deadlines in a run are like it: try a spread of them.
    misses = 0
    for start_us in range(1001, 1001 + 2000 * 7919, 7919):
        p = Playout(PlayoutConfig(mark_echo_margin_ms=MARGIN))
        p.push(1, b"\xff" * 160)
        p.finish(1)
        p.pull(start_us / 1_000_000, lambda frame: None, lambda mark: None)
        deadline = p.mark_deadline
        assert deadline is not None
        misses += deadline * 1_000_000 < round(deadline * 1_000_000)  # the case this guards
        assert p.take_overdue(deadline) == 1
    assert misses  # the spread holds deadlines that do not survive the float round trip


def test_an_echo_before_the_deadline_cancels_the_fallback() -> None:
    p, c = Playout(PlayoutConfig(mark_echo_margin_ms=MARGIN)), Carrier()
    fill(p, 1, 10)
    sent_paced(p, c, 200)
    assert p.on_mark("u1", at(210)) == 1
    assert p.mark_deadline is None and drain(p, 5000) == []
    assert not p.late_echo("u1")


def test_deadlines_follow_each_marks_audio_in_order() -> None:
    p, c = Playout(PlayoutConfig(mode="bulk", mark_echo_margin_ms=MARGIN)), Carrier()
    fill(p, 1, 3)  # 0 .. 60 ms
    fill(p, 2, 2)  # 60 .. 100 ms
    p.finish(7)  # no audio: due when the audio before it has played
    c.pull(p, 0)
    assert p.mark_deadline == pytest.approx(at(60 + MARGIN))
    assert p.on_mark("u2", at(90)) == 2  # echoes may skip one (a lost frame)
    assert p.mark_deadline == pytest.approx(at(60 + MARGIN))
    assert drain(p, 60 + MARGIN) == [1]
    assert p.mark_deadline == pytest.approx(at(100 + MARGIN))
    assert drain(p, 100 + MARGIN) == [7]
    # A mark after nothing at all is due at once: the carrier echoes it straight back.
    p.finish(8)
    c.pull(p, 1000)
    assert p.mark_deadline == pytest.approx(at(1000 + MARGIN))


def test_a_barge_in_cancels_the_pending_fallback() -> None:
    p, c = Playout(PlayoutConfig(mark_echo_margin_ms=MARGIN)), Carrier()
    fill(p, 1, 10)
    sent_paced(p, c, 200)
    assert p.mark_deadline is not None
    cut = p.interrupt(at(150))
    assert cut.utterance_id == 1 and cut.heard_ms == 140
    assert p.mark_deadline is None and drain(p, 5000) == []
    assert p.heard_ms(1, at(5000)) == 140  # the fallback never overrides what the clear froze


def test_zero_margin_takes_the_model_at_its_word() -> None:
    p, c = Playout(PlayoutConfig(mode="bulk", mark_echo_margin_ms=0)), Carrier()
    fill(p, 1, 5)
    c.pull(p, 0)
    assert drain(p, 99.99) == [] and drain(p, 100) == [1]


# -- heard accounting ------------------------------------------------------------------


@pytest.mark.parametrize("t0", [0.0, 1000.0, 123456.789])
def test_heard_exact_at_frame_boundaries(t0: float) -> None:
    p = Playout()
    fill(p, 1, 5)
    p.pull(t0, lambda f: None, lambda m: None)  # 4 frames: 0-20-40-60-80 ms
    assert p.heard_ms(1, t0) == 0
    assert p.heard_ms(1, t0 + 0.0199) == 0
    assert p.heard_ms(1, t0 + 0.020) == 20
    assert p.heard_ms(1, t0 + 0.0599) == 40
    assert p.heard_ms(1, t0 + 0.060) == 60
    assert p.heard_ms(1, t0 + 10.0) == 80  # only what was sent can be heard
    assert p.is_audible(t0) and p.is_audible(t0 + 0.0799) and not p.is_audible(t0 + 0.080)


def test_underrun_gap_is_skipped_by_heard_accounting() -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 3, finish=False)
    c.pull(p, 0)  # plays 0..60
    c.pull(p, 20)
    c.pull(p, 40)  # queue dry while the utterance goes on
    p.push(1, "a")
    p.push(1, "b")
    p.finish(1)
    c.pull(p, 100)  # 40 ms gap at the carrier: plays 100..140
    assert [s for _, s in c.frames] == [0, 20, 40, 100, 120]
    assert p.underruns == 1 and p.late_frames == 1
    assert p.heard_ms(1, at(99.9)) == 60
    assert p.heard_ms(1, at(119.9)) == 60
    assert p.heard_ms(1, at(120)) == 80
    assert p.heard_ms(1, at(140)) == 100
    assert not p.is_audible(at(70)) and p.is_audible(at(110))
    # Interrupt inside the second segment.
    cut = p.interrupt(at(130))
    assert cut == Interruption(1, 80, 100, 0)


def test_late_sender_is_late_but_not_an_underrun() -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 10)
    c.pull(p, 0)
    c.pull(p, 200)  # the sender overslept: frames were queued all along
    assert p.late_frames == 1 and p.underruns == 0
    assert c.frames[4][1] == 200
    assert p.heard_ms(1, at(200)) == 80
    assert p.heard_ms(1, at(240)) == 120


def test_underrun_then_late_sender_counted_apart() -> None:
    p, c = Playout(), Carrier()
    p.push(1, "a")
    c.pull(p, 0)  # queue dry: starved
    for f in "bcdefgh":
        p.push(1, f)
    c.pull(p, 50)  # gap 20..50 with the queue dry: underrun
    c.pull(p, 400)  # gap with frames queued: only late
    assert (p.underruns, p.late_frames) == (1, 2)


def test_first_frame_of_an_utterance_is_never_late() -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 2)
    c.pull(p, 0)
    fill(p, 2, 2)
    c.pull(p, 500)
    assert p.late_frames == 0 and p.underruns == 0
    assert p.heard_ms(2, at(530)) == 20


# -- interrupt -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cut_ms, heard",
    [(0, 0), (19.9, 0), (20, 20), (50, 40), (99.9, 80), (119.9, 100), (120, 120), (500, 120)],
)
def test_interrupt_freezes_heard_and_drops_the_rest(cut_ms: float, heard: int) -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 10)
    for ms in (0, 20, 40):
        c.pull(p, ms)  # 6 frames sent, playing until 120 ms
    cut = p.interrupt(at(cut_ms))
    assert cut == Interruption(1, heard, 120, 4)
    assert cut.heard_ms <= cut.sent_ms
    assert p.heard_ms(1, at(cut_ms + 1000)) == heard  # unplayed frames died with the clear
    assert c.pull(p, cut_ms + 1000) == []
    assert p.queued_frames == 0 and p.next_wakeup(at(cut_ms)) is None
    assert not p.is_audible(at(cut_ms))
    assert p.marks_sent == 0 and p.clears == 1


def test_interrupt_covers_later_utterances_and_ignores_stale_marks() -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 2)
    fill(p, 2, 3)
    fill(p, 3, 4)
    c.pull(p, 0)  # u1 (2 frames) + its mark + 2 frames of u2
    assert [e[0] for e in c.events] == ["frame", "frame", "mark", "frame", "frame"]
    cut = p.interrupt(at(30))
    assert cut == Interruption(1, 20, 40, 1 + 4)
    assert p.on_mark("u1", at(31)) is None  # echoed back by the clear
    assert p.heard_ms(2, at(100)) == 0
    # Late TTS output of the interrupted utterances never reaches the carrier.
    p.push(2, "stale")
    p.finish(3)
    assert p.queued_frames == 0
    assert c.pull(p, 40) == []
    # A new utterance starts at once from the reset cursor.
    new = fill(p, 4, 2)
    assert c.pull(p, 40) == [("frame", new[0]), ("frame", new[1]), ("mark", "u4")]
    assert p.is_audible(at(40)) and p.heard_ms(4, at(79.9)) == 20 and p.heard_ms(4, at(80)) == 40
    assert p.on_mark("u4", at(80)) == 4


def test_interrupt_during_underrun_and_when_idle() -> None:
    p, c = Playout(), Carrier()
    assert p.interrupt(at(0)) == Interruption(None, 0, 0, 0)
    fill(p, 1, 2, finish=False)
    c.pull(p, 10)
    c.pull(p, 30)
    # Played out, but the utterance is not finished: it is the one interrupted.
    assert p.interrupt(at(200)) == Interruption(1, 40, 40, 0)
    assert p.clears == 2


def test_interrupt_exactly_at_play_end_interrupts_nothing() -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 3)
    c.pull(p, 0)  # plays 0..60, mark sent, echo not back yet
    assert p.interrupt(at(59.999)) == Interruption(1, 40, 60, 0)
    p2, c2 = Playout(), Carrier()
    fill(p2, 1, 3)
    c2.pull(p2, 0)
    assert p2.interrupt(at(60)) == Interruption(None, 0, 0, 0)
    assert p2.heard_ms(1, at(60)) == 60
    assert p2.on_mark("u1", at(61)) is None  # sent before the clear


def test_interrupt_between_utterances_targets_the_pending_one() -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 2)
    c.pull(p, 0)
    assert p.on_mark("u1", at(40)) == 1
    fill(p, 2, 5)
    assert p.interrupt(at(100)) == Interruption(2, 0, 0, 5)
    assert p.heard_ms(1, at(100)) == 40


def test_queued_utterances_are_never_forgotten() -> None:
    p = Playout()
    for uid in range(20):
        fill(p, uid, 1)
    assert p.heard_ms(0, at(0)) == 0
    assert p.interrupt(at(0)) == Interruption(0, 0, 0, 20)


def test_playing_utterance_is_not_forgotten_behind_empty_ones() -> None:
    # Regression (found by the property test): empty utterances settle at once and
    # must not push a still-playing one out of the history.
    p, c = Playout(PlayoutConfig(mode="bulk")), Carrier()
    fill(p, 1, 3)
    for uid in range(2, 10):
        p.finish(uid)
    c.pull(p, 0)
    fill(p, 10, 2)  # the 10th utterance: u1 is still playing (until 60 ms)
    assert p.heard_ms(1, at(30)) == 20
    assert p.on_mark("u1", at(60)) == 1
    assert p.interrupt(at(70)) == Interruption(10, 0, 0, 2)


def test_memory_bounded_without_mark_echoes() -> None:
    p, c = Playout(PlayoutConfig(mode="bulk")), Carrier()
    for uid in range(200):
        fill(p, uid, 1)
        c.pull(p, uid * 30)  # each plays out before the next starts; no echo ever comes
    assert len(p._utts) <= 9 and len(p._marks) <= 32
    assert p.heard_ms(199, at(199 * 30 + 10)) == 0
    assert p.interrupt(at(199 * 30 + 10)) == Interruption(199, 0, 20, 0)


def test_history_is_bounded() -> None:
    p, c = Playout(PlayoutConfig(mode="bulk")), Carrier()
    for uid in range(100):
        fill(p, uid, 1)
        c.pull(p, uid * 20)
        assert p.on_mark(f"u{uid}", at(uid * 20 + 20)) == uid
    assert p.heard_ms(99, at(5000)) == 20
    with pytest.raises(KeyError):
        p.heard_ms(0, at(5000))
    assert len(p._utts) <= 8


# -- next_wakeup -----------------------------------------------------------------------


def test_next_wakeup_paced_steps() -> None:
    p, c = Playout(PlayoutConfig(tick_ms=20)), Carrier()
    assert p.next_wakeup(at(0)) is None
    fill(p, 1, 8)
    assert p.next_wakeup(at(0)) == at(0)
    c.pull(p, 0)
    for step in range(1, 5):
        wake = p.next_wakeup(c.now)
        assert wake == pytest.approx(at(20 * step), abs=1e-6)
        assert len(frames_of(c.pull(p, (wake - T0) / MS))) == 1
    assert c.events[-1] == ("mark", "u1")
    assert p.next_wakeup(c.now) is None


def test_default_tick_sends_two_frames_a_wake_up() -> None:
    p, c = Playout(), Carrier()  # lead 80 ms, tick 40 ms
    fill(p, 1, 12)
    c.pull(p, 0)
    assert len(frames_of(c.events)) == 4  # the lead at once
    for step in range(1, 5):
        wake = p.next_wakeup(c.now)
        assert wake == pytest.approx(at(40 * step), abs=1e-6)
        assert len(frames_of(c.pull(p, (wake - T0) / MS))) == 2


def test_next_wakeup_with_fine_tick_is_first_due_instant() -> None:
    p, c = Playout(PlayoutConfig(tick_ms=5)), Carrier()
    fill(p, 1, 8)
    c.pull(p, 0)
    assert p.next_wakeup(at(0)) == pytest.approx(at(5), abs=1e-7)  # tick-limited
    assert len(frames_of(c.pull(p, 5))) == 1  # start 80 < 85; cursor now 100
    wake = p.next_wakeup(at(5))
    assert wake == pytest.approx(at(20.001), abs=1e-7)  # due-limited: first µs with 100 < t + 80
    assert c.pull(p, 20.0004) == []  # still 20000 µs: not yet due
    assert len(frames_of(c.pull(p, (wake - T0) / MS))) == 1


def test_next_wakeup_bulk_and_overdue() -> None:
    p, c = Playout(), Carrier()
    fill(p, 1, 8)
    c.pull(p, 0)
    assert p.next_wakeup(at(300)) == at(300)  # overdue: now
    b = Playout(PlayoutConfig(mode="bulk"))
    fill(b, 1, 3)
    assert b.next_wakeup(at(5)) == at(5)


# -- property: the Playout agrees with a brute-force carrier ---------------------------

BASE_US = 5_000_000_000  # 5000 s
FRAME_US = 20_000

step_st = st.tuples(
    st.one_of(st.integers(0, 25_000), st.integers(0, 150_000)),  # µs; the long ones make gaps
    st.sampled_from(("feed", "feed", "feed", "pull", "pull", "wake", "finish")),
    st.one_of(st.integers(1, 200), st.integers(1, 2000)),  # chunk bytes; 160 a frame
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    steps=st.lists(step_st, min_size=10, max_size=60),
    mode=st.sampled_from(("paced", "paced", "bulk")),
    lead_ms=st.sampled_from((20, 40, 80, 100)),
    tick_ms=st.sampled_from((5, 20, 40)),
)
def test_matches_brute_force_carrier(data, steps, mode, lead_ms, tick_ms) -> None:
    interrupt_at = data.draw(st.one_of(st.none(), st.integers(0, len(steps) - 1)), label="interrupt_at")
    p = Playout(PlayoutConfig(mode=mode, lead_ms=lead_ms, tick_ms=tick_ms))
    lead_us = lead_ms * 1000
    fb = PCMU.frame_bytes
    t = BASE_US
    epoch = 0
    expected: deque[tuple] = deque()  # what the carrier must receive next, in order
    played: dict[int, list[tuple[int, int, int]]] = {}  # uid -> (start, end, epoch) of sent frames
    pushed: dict[int, int] = {}
    finished: set[int] = set()
    frozen: dict[int, int] = {}  # interrupted uid -> frames heard
    confirmed: set[int] = set()
    order: list[int] = []  # uids in the order the Playout learnt of them
    echoes: list[tuple[int, str, int, int]] = []  # (due, name, uid, epoch)
    carrier = {"end": -(1 << 62), "last_uid": None, "late": 0, "sent": 0, "marks": 0}
    uid, reframer, fed, cut_frames = 1, Reframer(fb, PCMU.silence_byte), bytearray(), []

    def send_frame(frame) -> None:
        assert expected and expected.popleft() == ("f", frame), "frame out of order or stale"
        fuid = frame[0]
        start = max(t, carrier["end"])
        if mode == "paced":
            assert start < t + lead_us
        if carrier["last_uid"] == fuid and start > carrier["end"]:
            carrier["late"] += 1
        carrier["end"], carrier["last_uid"] = start + FRAME_US, fuid
        carrier["sent"] += 1
        played.setdefault(fuid, []).append((start, start + FRAME_US, epoch))

    def send_mark(name: str) -> None:
        muid = int(name[1:])
        assert expected and expected.popleft() == ("m", muid), "mark out of order"
        carrier["marks"] += 1
        echoes.append((max(t, carrier["end"]), name, muid, epoch))

    def heard_frames(u: int, q: int) -> int:
        if u in frozen:
            return frozen[u]
        return sum(1 for _, end, _ in played.get(u, ()) if end <= q)

    def learn(u: int) -> None:
        if u not in order:
            order.append(u)

    def do_push(frame_bytes: bytes) -> None:
        obj = (uid, len(cut_frames))
        cut_frames.append(frame_bytes)
        p.push(uid, obj)
        learn(uid)
        if uid not in frozen:
            expected.append(("f", obj))
            pushed[uid] = pushed.get(uid, 0) + 1

    for i, (dt, action, size) in enumerate(steps):
        t += dt
        now = t / 1e6
        # The carrier echoes marks when playback reaches them.
        for echo in sorted(e for e in echoes if e[0] <= t):
            echoes.remove(echo)
            _, name, muid, ep = echo
            assert p.on_mark(name, now) == (muid if ep == epoch else None)
            if ep == epoch:
                confirmed.add(muid)
        if i == interrupt_at:
            target, dropped = None, 0
            for u in order:
                if u in frozen or u in confirmed:
                    continue
                if target is None:
                    complete = (
                        u in finished and pushed.get(u, 0) == len(played.get(u, ()))
                        and all(end <= t for _, end, _ in played.get(u, ()))
                    )
                    if complete:
                        continue
                    target = u
                frozen[u] = heard_frames(u, t)
                dropped += pushed.get(u, 0) - len(played.get(u, ()))
            cut = p.interrupt(now)
            if target is None:
                assert cut == Interruption(None, 0, 0, 0)
            else:
                sent_ms = 20 * len(played.get(target, ()))
                assert cut == Interruption(target, 20 * frozen[target], sent_ms, dropped)
                assert cut.heard_ms <= cut.sent_ms
            expected.clear()
            carrier["end"], carrier["last_uid"] = t, None
            epoch += 1
            for echo in list(echoes):  # clear returns the pending marks: all stale now
                echoes.remove(echo)
                assert p.on_mark(echo[1], now) is None
        if action == "feed":
            chunk = bytes((uid * 31 + len(fed) + k) % 256 for k in range(size))
            fed += chunk
            for f in reframer.feed(chunk):
                do_push(f)
        elif action == "finish":
            tail = reframer.flush()
            if tail is not None:
                do_push(tail)
            assert b"".join(cut_frames) == bytes(fed) + b"\xff" * (-len(fed) % fb)
            p.finish(uid)
            learn(uid)
            if uid not in frozen:
                finished.add(uid)
                expected.append(("m", uid))
            uid, reframer, fed, cut_frames = uid + 1, Reframer(fb, PCMU.silence_byte), bytearray(), []
        elif action == "pull":
            p.pull(now, send_frame, send_mark)
        else:  # wake: sleep until next_wakeup, then pull; it must have been worth waking for
            wake = p.next_wakeup(now)
            if wake is not None:
                t = max(t, round(wake * 1e6))
                now = t / 1e6
                before = carrier["sent"] + carrier["marks"]
                p.pull(now, send_frame, send_mark)
                assert carrier["sent"] + carrier["marks"] > before

        # Invariants at the current time.
        assert p.queued_frames == sum(1 for e in expected if e[0] == "f")
        wake = p.next_wakeup(now)
        if not expected:
            assert wake is None
        else:
            assert wake is not None and wake >= now
            w = round(wake * 1e6)
            if mode == "bulk" or expected[0][0] == "m":
                assert wake == now
            else:
                assert max(w, carrier["end"]) < w + lead_us  # something is due at the wake-up
        audible = any(s <= t < e for fs in played.values() for s, e, ep in fs if ep == epoch)
        assert p.is_audible(now) == audible
        for u in order[-8:]:
            sent = len(played.get(u, ()))
            for q in (t, t + 19_999, t + 20_000, t + 61_000):
                h = p.heard_ms(u, q / 1e6)
                assert h == 20 * heard_frames(u, q)
                assert h <= 20 * sent

    assert p.frames_sent == carrier["sent"]
    assert p.marks_sent == carrier["marks"]
    assert p.late_frames == carrier["late"]
    assert p.clears == (0 if interrupt_at is None else 1)
