"""Endpointer: exact event frames for scripted VAD sequences, and the event grammar.

Scripts are strings, one character per 20 ms frame: ``V`` voiced, ``.`` unvoiced.
With the default config the frame counts are min_speech 3, tentative_end 6,
end_of_turn 15, min_barge_in 10.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import EndpointingConfig
from engine.endpointing import Endpointer
from engine.endpointing import EndpointEvent as E

# Frame counts below assume 6 tentative-end and 10 barge-in frames (not the shipped defaults).
DEFAULT = EndpointingConfig(tentative_end_ms=120, min_barge_in_ms=200)


def feed(ep: Endpointer, script: str, audible: bool | str = False, *, pending: bool = False) -> list[tuple[int, E]]:
    """Run a script; ``audible`` is a bool for all frames or a string with ``A`` per audible frame.
    BARGE_IN_PENDING is left out unless ``pending`` (the tests of it ask for it)."""
    events = []
    for i, ch in enumerate(script):
        heard = audible if isinstance(audible, bool) else audible[i] == "A"
        ev = ep.process(ch == "V", heard)
        if ev is not None and (pending or ev is not E.BARGE_IN_PENDING):
            events.append((ep.frame_index - 1, ev))
    return events


def run(script: str, audible: bool | str = False, config: EndpointingConfig = DEFAULT,
        *, pending: bool = False) -> list[tuple[int, E]]:
    return feed(Endpointer(config), script, audible, pending=pending)


# --------------------------------------------------------------------------- speech start


def test_speech_start_on_the_min_speech_frame() -> None:
    ep = Endpointer(DEFAULT)
    assert feed(ep, "VV") == []
    assert not ep.in_speech
    assert feed(ep, "V") == [(2, E.SPEECH_START)]
    assert ep.in_speech
    assert ep.speech_start_frame == 0
    assert ep.last_voiced_frame == 2
    assert ep.frame_index == 3


def test_speech_start_after_leading_silence() -> None:
    ep = Endpointer(DEFAULT)
    assert feed(ep, ".....VVV") == [(7, E.SPEECH_START)]
    assert ep.speech_start_frame == 5


def test_single_unvoiced_frame_inside_the_run_is_tolerated_but_not_counted() -> None:
    ep = Endpointer(DEFAULT)
    assert feed(ep, "VV.V") == [(3, E.SPEECH_START)]
    assert ep.speech_start_frame == 0


def test_two_unvoiced_frames_end_the_run() -> None:
    ep = Endpointer(DEFAULT)
    assert feed(ep, "VV..VVV") == [(6, E.SPEECH_START)]
    assert ep.speech_start_frame == 4


def test_isolated_blips_never_start_speech() -> None:
    assert run("V..VV..V.V..VV.." * 10) == []


def test_frame_counts_follow_the_config_rounding_up() -> None:
    config = EndpointingConfig(min_speech_ms=90, tentative_end_ms=150, end_of_turn_ms=410, min_barge_in_ms=250)
    # 90 ms -> 5 frames, 150 -> 8, 410 -> 21 (ceil).
    assert run("V" * 10 + "." * 30, config=config) == [(4, E.SPEECH_START), (17, E.TENTATIVE_END), (30, E.TURN_END)]
    # 250 ms -> 13 frames of barge-in.
    assert run("V" * 13, audible=True, config=config) == [(12, E.BARGE_IN)]


# --------------------------------------------------------------------------- end of turn


def test_tentative_end_and_turn_end_at_exact_frames() -> None:
    ep = Endpointer(DEFAULT)
    events = feed(ep, "V" * 10 + "." * 30)
    # last voiced frame 9; +6 and +15 frames of silence.
    assert events == [(2, E.SPEECH_START), (15, E.TENTATIVE_END), (24, E.TURN_END)]
    assert not ep.in_speech
    assert ep.speech_start_frame == 0
    assert ep.last_voiced_frame == 9


def test_tentative_equal_to_end_of_turn_sends_only_turn_end() -> None:
    config = EndpointingConfig(tentative_end_ms=300, end_of_turn_ms=300)
    assert run("V" * 10 + "." * 30, config=config) == [(2, E.SPEECH_START), (24, E.TURN_END)]


def test_resumed_speech_cancels_the_tentative_end() -> None:
    script = "V" * 10 + "." * 8 + "VVV" + "." * 20
    # frames 18-20 voiced: the third one confirms the resumption.
    assert run(script) == [
        (2, E.SPEECH_START),
        (15, E.TENTATIVE_END),
        (20, E.SPEECH_RESUMED),
        (26, E.TENTATIVE_END),
        (35, E.TURN_END),
    ]


def test_resumption_before_the_tentative_end_is_silent() -> None:
    script = "V" * 10 + "..." + "VVV" + "." * 20
    # Confirmed on frame 15, the new last voiced frame: tentative at 21, end at 30.
    assert run(script) == [(2, E.SPEECH_START), (21, E.TENTATIVE_END), (30, E.TURN_END)]


def test_silence_count_runs_on_while_a_resumption_is_pending() -> None:
    # Voiced again at 14 and 15, but only confirmed at 16: frame 15 is 6 frames
    # after the last confirmed voiced frame, so the tentative end still fires.
    script = "V" * 10 + "...." + "VVV" + "." * 20
    assert run(script) == [
        (2, E.SPEECH_START),
        (15, E.TENTATIVE_END),
        (16, E.SPEECH_RESUMED),
        (22, E.TENTATIVE_END),
        (31, E.TURN_END),
    ]


def test_single_gap_inside_speech_continues_it_immediately() -> None:
    # V at 11 after one unvoiced frame: part of the speech without a 3-frame run.
    assert run("V" * 10 + ".V" + "." * 20) == [(2, E.SPEECH_START), (17, E.TENTATIVE_END), (26, E.TURN_END)]


def test_flicker_after_speech_does_not_hold_the_turn_open() -> None:
    # Traffic at 10 dB SNR after the caller stops: voiced, unvoiced, voiced... The first lone
    # frame joins the speech (it follows solid speech across one dropout); the two after it
    # vouch for nothing and are too few for a run, so the end is counted from frame 11.
    script = "V" * 10 + ".V.V.V" + "." * 20
    assert run(script) == [(2, E.SPEECH_START), (17, E.TENTATIVE_END), (26, E.TURN_END)]


def test_weak_speech_that_flickers_still_holds_the_turn_with_a_full_run() -> None:
    # Three voiced frames with single dropouts between them make a run: the speech goes on.
    script = "V" * 10 + ".V.V.V.V" + "." * 20
    assert run(script) == [(2, E.SPEECH_START), (23, E.TENTATIVE_END), (32, E.TURN_END)]


@pytest.mark.parametrize("blip", ["V", "VV", "V.V", "VV..V"])
def test_click_in_a_pause_does_not_push_back_the_end_of_turn(blip: str) -> None:
    # Mid-sentence pause, then a click (shorter than min_speech) after the tentative end.
    script = "V" * 10 + "." * 8 + blip + "." * 30
    assert run(script) == [(2, E.SPEECH_START), (15, E.TENTATIVE_END), (24, E.TURN_END)]


def test_repeated_clicks_in_a_pause_do_not_push_back_the_end_of_turn() -> None:
    script = "V" * 10 + "..V..V...V.V..V" + "." * 20
    assert run(script) == [(2, E.SPEECH_START), (15, E.TENTATIVE_END), (24, E.TURN_END)]


def test_run_pending_at_turn_end_starts_the_next_utterance() -> None:
    ep = Endpointer(DEFAULT)
    # Silence frames 10-23; voiced from 24: frame 24 is also the 15th frame after the last voiced one.
    events = feed(ep, "V" * 10 + "." * 14 + "VVV")
    assert events == [(2, E.SPEECH_START), (15, E.TENTATIVE_END), (24, E.TURN_END), (26, E.SPEECH_START)]
    assert ep.speech_start_frame == 24


def test_second_utterance_after_turn_end() -> None:
    ep = Endpointer(DEFAULT)
    events = feed(ep, "V" * 5 + "." * 20 + "V" * 5 + "." * 20)
    assert events == [
        (2, E.SPEECH_START),
        (10, E.TENTATIVE_END),
        (19, E.TURN_END),
        (27, E.SPEECH_START),
        (35, E.TENTATIVE_END),
        (44, E.TURN_END),
    ]
    assert ep.speech_start_frame == 25


# --------------------------------------------------------------------------- barge-in


def test_barge_in_needs_min_barge_in_ms() -> None:
    ep = Endpointer(DEFAULT)
    assert feed(ep, "V" * 9, audible=True) == []
    assert not ep.in_speech
    assert feed(ep, "V", audible=True) == [(9, E.BARGE_IN)]
    assert ep.in_speech and ep.speech_start_frame == 0


def test_barge_in_counts_as_speech_start_and_ends_as_usual() -> None:
    events = run("V" * 10 + "." * 20, audible=True)
    assert events == [(9, E.BARGE_IN), (15, E.TENTATIVE_END), (24, E.TURN_END)]


def test_barge_in_run_tolerates_short_gaps() -> None:
    # Ten voiced frames with gaps of 2 and 3 frames: still one run.
    assert run("VVVVV..VVV...VV", audible=True) == [(14, E.BARGE_IN)]


@pytest.mark.parametrize("burst", ["V", "VVV", "VVVVV", "V" * 9, "VV.VV..VV"])
def test_short_burst_while_agent_audible_is_rejected(burst: str) -> None:
    ep = Endpointer(DEFAULT)
    events = feed(ep, burst + "." * 10, audible=True)
    last_voiced = burst.rindex("V")
    assert events == [(last_voiced + 4, E.BARGE_IN_REJECTED)]  # 80 ms of silence ends the run
    assert not ep.in_speech


def test_after_a_rejection_a_new_run_starts_from_scratch() -> None:
    events = run("VVVVV...." + "V" * 10, audible=True)
    assert events == [(8, E.BARGE_IN_REJECTED), (18, E.BARGE_IN)]


def test_pending_run_is_judged_by_min_speech_once_the_agent_stops() -> None:
    # Voiced from frame 0; the agent falls silent at frame 5 with 5 voiced frames in the run.
    assert run("VVVVVV", audible="AAAAA.") == [(5, E.SPEECH_START)]
    # Falling silent on an unvoiced frame inside the run: speech starts there.
    ep = Endpointer(DEFAULT)
    assert feed(ep, "VVVV.", audible="AAAA.") == [(4, E.SPEECH_START)]
    assert ep.speech_start_frame == 0 and ep.last_voiced_frame == 3


def test_run_that_started_while_audible_and_ends_after_the_agent_stops_is_rejected() -> None:
    assert run("VV....", audible="AA....") == [(3, E.BARGE_IN_REJECTED)]


def test_agent_becoming_audible_mid_run_raises_the_bar() -> None:
    # Two voiced frames before the agent is heard: the run now needs min_barge_in.
    assert run("V" * 10, audible="..AAAAAAAA") == [(9, E.BARGE_IN)]
    # Its end is not a rejection: it did not start over agent audio.
    assert run("VVVV" + "." * 6, audible="..AAAAAAAA") == []


def test_agent_audio_is_ignored_while_the_caller_holds_the_floor() -> None:
    events = run("V" * 10 + "..." + "V" * 12 + "." * 20, audible="." * 12 + "A" * 40)
    assert events == [(2, E.SPEECH_START), (30, E.TENTATIVE_END), (39, E.TURN_END)]


# --------------------------------------------------------------------------- misc


def test_shortest_settings_give_one_event_per_frame() -> None:
    config = EndpointingConfig(min_speech_ms=20, tentative_end_ms=20, end_of_turn_ms=40, min_barge_in_ms=20)
    ep = Endpointer(config)
    frames = [ep.process(v == "V", False) for v in "V.V.V..V"]
    start, tentative, resumed, end = E.SPEECH_START, E.TENTATIVE_END, E.SPEECH_RESUMED, E.TURN_END
    assert frames == [start, tentative, resumed, tentative, resumed, tentative, end, start]


def test_a_one_frame_end_of_turn_is_refused() -> None:
    # A single unvoiced frame is tolerated inside speech, so it could never end a turn.
    with pytest.raises(ValueError):
        EndpointingConfig(tentative_end_ms=20, end_of_turn_ms=20)


def test_reset_returns_to_a_new_call() -> None:
    ep = Endpointer(DEFAULT)
    feed(ep, "V" * 10 + "...")
    ep.reset()
    assert (ep.frame_index, ep.speech_start_frame, ep.last_voiced_frame, ep.in_speech) == (0, -1, -1, False)
    assert feed(ep, "V" * 10 + "." * 30) == run("V" * 10 + "." * 30)


def test_event_values_are_stable() -> None:
    assert [int(e) for e in E] == [1, 2, 3, 4, 5, 6, 7]


def test_speech_over_the_agent_is_flagged_pending_after_min_speech() -> None:
    # min_speech is 3 frames: the third voiced frame over agent audio flags a possible barge-in,
    # which then resolves either way.
    assert run("V" * 10, audible=True, pending=True) == [(2, E.BARGE_IN_PENDING), (9, E.BARGE_IN)]
    assert run("VVVV" + "." * 6, audible=True, pending=True) == [(2, E.BARGE_IN_PENDING), (7, E.BARGE_IN_REJECTED)]
    # Shorter than min_speech: never pending, still rejected.
    assert run("VV" + "." * 6, audible=True, pending=True) == [(5, E.BARGE_IN_REJECTED)]
    # Not over agent audio: no pending, a plain speech start.
    assert run("VVVV", pending=True) == [(2, E.SPEECH_START)]


# --------------------------------------------------------------------------- grammar (property)

# Run-length encoded scripts reach every state far more often than independent frames.
segments = st.lists(
    st.tuples(st.booleans(), st.integers(min_value=1, max_value=25), st.booleans()), min_size=1, max_size=40
)
configs = st.builds(
    lambda s, t, extra, b: EndpointingConfig(
        min_speech_ms=20 * s, tentative_end_ms=20 * t, end_of_turn_ms=20 * max(2, t + extra), min_barge_in_ms=20 * b
    ),
    st.integers(1, 6),
    st.integers(1, 10),
    st.integers(0, 15),
    st.integers(1, 15),
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(segments, configs)
def test_events_follow_the_turn_grammar(segs: list[tuple[bool, int, bool]], config: EndpointingConfig) -> None:
    ep = Endpointer(config)
    n_speech = config.min_speech_ms // 20
    n_barge = config.min_barge_in_ms // 20
    n_tent = config.tentative_end_ms // 20
    n_end = config.end_of_turn_ms // 20
    voiced: list[bool] = []
    audible: list[bool] = []
    in_speech = False
    tentative = False
    for v, length, a in segs:
        for _ in range(length):
            voiced.append(v)
            audible.append(a)
            f = len(voiced) - 1
            ev = ep.process(v, a)
            assert ep.frame_index == f + 1
            if ev in (E.SPEECH_START, E.BARGE_IN):
                assert not in_speech, "two starts without an end"
                in_speech, tentative = True, False
                start = ep.speech_start_frame
                assert voiced[start], "an utterance starts on a voiced frame"
                need = n_barge if ev == E.BARGE_IN else n_speech
                assert sum(voiced[start : f + 1]) >= need
                assert audible[f] == (ev == E.BARGE_IN)
            elif ev == E.BARGE_IN_REJECTED:
                assert not in_speech
                assert not voiced[f] and not voiced[f - 1], "a run ends on silence"
            elif ev == E.BARGE_IN_PENDING:
                assert not in_speech and voiced[f] and audible[f], "pending only for speech over the agent"
            elif ev == E.TENTATIVE_END:
                assert in_speech and not tentative
                assert n_tent < n_end
                assert f - ep.last_voiced_frame == n_tent
                tentative = True
            elif ev == E.SPEECH_RESUMED:
                assert in_speech and tentative, "resumed only after a tentative end"
                assert voiced[f] and ep.last_voiced_frame == f
                tentative = False
            elif ev == E.TURN_END:
                assert in_speech, "turn end without a start"
                assert f - ep.last_voiced_frame == n_end
                in_speech = tentative = False
            assert ep.in_speech == in_speech
            if in_speech:
                assert voiced[ep.last_voiced_frame]
                assert ep.speech_start_frame <= ep.last_voiced_frame <= f
                # The trailing silence never runs past the end of turn without ending it.
                assert f - ep.last_voiced_frame < n_end


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(segments)
def test_output_depends_only_on_the_input(segs: list[tuple[bool, int, bool]]) -> None:
    script = [(v, a) for v, length, a in segs for _ in range(length)]
    first = Endpointer(DEFAULT)
    a = [first.process(v, au) for v, au in script]
    first.reset()
    assert [first.process(v, au) for v, au in script] == a


# --------------------------------------------------------------------------- ended sooner by the listener

SOONER = EndpointingConfig(tentative_end_ms=120, min_barge_in_ms=200, confident_end_of_turn_ms=200)  # 10 frames


def test_end_sooner_ends_the_turn_on_the_confident_frame() -> None:
    ep = Endpointer(SOONER)
    assert feed(ep, "VVVVV......") == [(2, E.SPEECH_START), (10, E.TENTATIVE_END)]
    assert ep.end_sooner()
    assert feed(ep, "......") == [(14, E.TURN_END)]  # 10 frames after the last voiced frame (4)
    assert not ep.in_speech
    assert feed(ep, "." * 20) == []  # no second TURN_END at end_of_turn_ms


def test_end_sooner_past_the_confident_silence_ends_on_the_next_frame() -> None:
    ep = Endpointer(SOONER)
    feed(ep, "VVVVV" + "." * 12)  # 12 frames of silence already
    assert ep.end_sooner()
    assert feed(ep, ".") == [(17, E.TURN_END)]


def test_speech_that_resumes_first_wins_and_the_next_pause_waits_the_full_end() -> None:
    ep = Endpointer(SOONER)
    feed(ep, "VVVVV......")
    assert ep.end_sooner()
    assert feed(ep, "VVV") == [(13, E.SPEECH_RESUMED)]
    assert feed(ep, "." * 15) == [(19, E.TENTATIVE_END), (28, E.TURN_END)]


def test_end_sooner_outside_a_pause_or_without_a_shorter_setting_does_nothing() -> None:
    assert not Endpointer(SOONER).end_sooner()
    ep = Endpointer(SOONER)
    feed(ep, "VVVVV")
    assert not ep.end_sooner()  # speaking: no tentative end yet
    ep = Endpointer(EndpointingConfig(tentative_end_ms=120, confident_end_of_turn_ms=300))
    feed(ep, "VVVVV......")
    assert not ep.end_sooner()
