import pytest

from engine.session import SessionStats
from engine.timeline import STAMPS, TurnTimeline


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
