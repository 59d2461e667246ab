import pytest

from engine.session import SessionStats
from engine.timeline import MAX_TIMELINES, STAMPS, TurnTimeline, TurnTimelines


def full_turn() -> TurnTimeline:
    t = TurnTimeline(1)
    for name, at in [
        ("speech_start", 10.000), ("speech_end", 11.000), ("tentative_end", 11.120), ("turn_end", 11.300),
        ("stt_final", 11.400), ("llm_request", 11.402), ("llm_first_token", 11.552), ("tts_request", 11.553),
        ("tts_first_audio", 11.653), ("first_frame_sent", 11.655),
    ]:
        t.stamp(name, at)
    return t


def test_turn_latency_and_stages():
    t = full_turn()
    assert t.turn_latency_ms == pytest.approx(655.0)
    stages = t.stages_ms()
    assert stages["endpointing"] == pytest.approx(300.0)
    assert stages["stt"] == pytest.approx(100.0)
    assert stages["llm_first_token"] == pytest.approx(150.0)
    assert stages["first_chunk"] == pytest.approx(1.0)
    assert stages["tts_first_audio"] == pytest.approx(100.0)
    assert stages["send"] == pytest.approx(2.0)


def test_engine_added_counts_only_the_engines_hand_offs():
    # 2 ms stt->llm request, 2 ms first audio->first frame; waiting for tokens is the LLM's
    assert full_turn().engine_added_ms == pytest.approx(4.0)


def test_speculative_request_before_end_of_turn_adds_nothing():
    t = full_turn()
    t.stamp("llm_request", 11.150, overwrite=True)
    assert t.engine_added_ms == pytest.approx(2.0)


def test_audio_ready_before_the_turn_ends_waits_for_the_turn_not_the_engine():
    t = full_turn()
    t.stamp("tts_first_audio", 11.250, overwrite=True)   # speculative audio, held
    t.stamp("first_frame_sent", 11.3015, overwrite=True)  # sent 1.5 ms after the turn ended
    t.stamp("llm_request", 11.150, overwrite=True)
    assert t.engine_added_ms == pytest.approx(1.5)


def test_first_stamp_wins_unless_overwritten():
    t = TurnTimeline(1)
    t.stamp("llm_request", 1.0)
    t.stamp("llm_request", 2.0)
    assert t.llm_request == 1.0
    t.stamp("llm_request", 3.0, overwrite=True)
    assert t.llm_request == 3.0


def test_missing_stamps_give_none_not_garbage():
    t = TurnTimeline(2)
    t.stamp("speech_end", 1.0)
    assert t.turn_latency_ms is None and t.engine_added_ms is None and t.stages_ms() == {}
    with pytest.raises(ValueError):
        t.stamp("bogus", 1.0)
    assert t.as_dict()["turn_id"] == 2


def test_speculation_saved_is_what_the_early_request_took_off_the_wait():
    t = full_turn()  # not speculative: nothing saved
    assert t.speculation_saved_ms is None
    # Request at the tentative end; audio ready before the turn end; played at the turn end.
    t.speculative = True
    for name, at in [("llm_request", 11.020), ("llm_first_token", 11.170), ("tts_request", 11.171),
                     ("tts_first_audio", 11.270), ("turn_end", 11.300), ("stt_final", 11.120),
                     ("first_frame_sent", 11.301)]:
        t.stamp(name, at, overwrite=True)
    # Without it: request at 11.300, audio 0.250 later at 11.550; it went at 11.301.
    assert t.speculation_saved_ms == pytest.approx(249.0)
    assert t.as_dict()["speculation_saved_ms"] == pytest.approx(249.0)


def test_every_stamp_is_a_declared_field_that_starts_unset() -> None:
    """STAMPS drives stamp() and as_dict(); the fields are written out for type checkers: same names."""
    t = TurnTimeline(7)
    declared = {name for name, kind in TurnTimeline.__annotations__.items() if kind == "float | None"}
    assert declared == set(STAMPS)
    assert all(getattr(t, name) is None for name in STAMPS)
    t.stamp("speech_end", 1.0)
    t.stamp("speech_end", 2.0)  # the first value wins
    assert t.speech_end == 1.0 and t.as_dict()["speech_end"] == 1.0


def test_session_stats_start_at_zero_for_every_counter() -> None:
    stats = SessionStats()
    assert all(getattr(stats, name) == 0 for name in SessionStats.__slots__)


def test_a_turn_goes_on_through_its_pauses_and_a_new_one_opens_after_its_end():
    turns = TurnTimelines()
    turns.speech_started(1.0)
    turns.tentative_end(1.5)
    turns.speech_started(1.6)  # resumed before the end: the same turn, its first speech kept
    first = turns.current
    assert first is not None and first.turn_id == 1 and first.speech_start == 1.0
    turns.turn_ended(2.0, 2.3)
    assert (first.speech_end, first.turn_end) == (2.0, 2.3)
    turns.speech_started(3.0)
    assert turns.current is not first and turns.current.turn_id == 2
    assert list(turns.recent) == [first, turns.current]


def test_a_turn_is_measured_once_and_a_greeting_not_at_all():
    turns = TurnTimelines()
    assert turns.first_frame_sent(0.5) is None  # the greeting: no caller turn yet
    turns.speech_started(1.0)
    assert turns.first_frame_sent(1.2) is None  # the turn has not ended: not its reply
    turns.turn_ended(1.5, 1.8)
    measured = turns.first_frame_sent(2.0)
    assert measured is turns.current and measured.turn_latency_ms == pytest.approx(500.0)
    assert turns.first_frame_sent(2.1) is None


def test_a_barge_in_marks_only_the_latest_answered_turn_still_playing():
    turns = TurnTimelines()
    turns.speech_started(1.0)
    turns.turn_ended(1.5, 1.8)
    turns.first_frame_sent(2.0)
    answered = turns.current
    turns.speech_started(2.5)  # the caller talks over the reply: a new turn, not yet answered
    turns.interrupted(2.9)
    assert answered.interrupted == 2.9 and turns.current.interrupted is None
    turns.audio_ended(3.0)  # (the current turn has no reply playing: nothing to stamp)
    assert turns.current.agent_audio_end is None

    played = TurnTimelines()
    played.speech_started(1.0)
    played.turn_ended(1.5, 1.8)
    played.first_frame_sent(2.0)
    played.audio_ended(3.0)
    played.interrupted(3.5)  # the reply had played out: no barge-in on it
    assert played.current.interrupted is None and played.current.agent_audio_end == 3.0


def test_a_long_call_keeps_only_the_latest_timelines():
    turns = TurnTimelines()
    for i in range(MAX_TIMELINES + 5):
        turns.speech_started(float(i))
        turns.turn_ended(i + 0.5, i + 0.8)
    assert len(turns.recent) == MAX_TIMELINES and turns.recent[0].turn_id == 6
