"""The engine's per-turn provider families: TTFB by provider, errors by provider."""

from __future__ import annotations

from engine.metrics import EngineMetrics
from engine.timeline import TurnTimeline
from engine.turn_outcome import Hold, Speculation, TurnEnd, TurnOutcome


def _turn(**stamps: float) -> TurnTimeline:
    timeline = TurnTimeline(1)
    for name, t in stamps.items():
        timeline.stamp(name, t)
    return timeline


def _sample(metrics: EngineMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_each_providers_first_byte_is_observed_once_per_turn_under_its_name():
    metrics = EngineMetrics()
    metrics.set_providers(stt="telnyx-stt", llm="openai-chat", tts="telnyx-tts")
    metrics.observe_turn(_turn(speech_end=0.0, turn_end=0.3, stt_final=0.35, llm_request=0.2,
                               llm_first_token=0.32, tts_request=0.36, tts_first_audio=0.44, first_frame_sent=0.45))
    # A turn without a TTS request (e.g. cut off before it spoke) adds to the others only.
    metrics.observe_turn(_turn(turn_end=1.0, stt_final=1.1, llm_request=1.0, llm_first_token=1.2))
    ttfb = "callagent_provider_ttfb_seconds"
    assert _sample(metrics, f"{ttfb}_count", kind="stt", provider="telnyx-stt") == 2
    assert _sample(metrics, f"{ttfb}_count", kind="llm", provider="openai-chat") == 2
    assert _sample(metrics, f"{ttfb}_count", kind="tts", provider="telnyx-tts") == 1
    assert abs(_sample(metrics, f"{ttfb}_sum", kind="tts", provider="telnyx-tts") - 0.08) < 1e-9
    assert abs(_sample(metrics, f"{ttfb}_sum", kind="llm", provider="openai-chat") - 0.32) < 1e-9
    # The placeholder names of an EngineMetrics not yet told its providers leave no series.
    assert _sample(metrics, f"{ttfb}_count", kind="stt", provider="stt") is None


def test_provider_errors_count_by_provider():
    metrics = EngineMetrics()
    metrics.provider_error("telnyx-stt")
    metrics.provider_error("telnyx-stt")
    metrics.provider_error("openai-chat")
    assert _sample(metrics, "callagent_provider_errors_total", provider="telnyx-stt") == 2
    assert _sample(metrics, "callagent_provider_errors_total", provider="openai-chat") == 1


def test_turns_count_by_how_they_ended_and_the_kept_turns_say_it_with_their_call():
    metrics = EngineMetrics(keep_turns=10)
    held = _turn(speech_end=0.0, turn_end=0.3, first_frame_sent=1.2)
    held.outcome = TurnOutcome(TurnEnd.HOLD_RAN_OUT, Speculation.KEPT, Hold.UNSURE, contour=True)
    metrics.observe_turn(held, "stream-1")
    metrics.observe_turn(_turn(speech_end=2.0, turn_end=2.3, first_frame_sent=2.6))  # no account: not counted
    ends = "callagent_turn_ends_total"
    assert _sample(metrics, ends, end="hold_ran_out", hold="unsure") == 1
    assert _sample(metrics, ends, end="hold_ran_out", hold="incomplete") == 0
    assert _sample(metrics, ends, end="vad", hold="") == 0
    kept = list(metrics.recent_turns)
    assert kept[0]["stream_id"] == "stream-1" and kept[0]["outcome"] == held.outcome.as_dict()
    assert kept[1]["stream_id"] is None and kept[1]["outcome"] is None


def test_a_streams_answered_turns_the_engine_did_not_measure_are_kept_for_the_bench_only():
    measured, premature, silent = _turn(turn_end=1.0, first_frame_sent=1.3), _turn(turn_end=5.0), _turn(turn_end=9.0)
    measured.outcome = premature.outcome = TurnOutcome(TurnEnd.VAD, Speculation.KEPT)  # silent: never committed
    quiet = EngineMetrics()  # a production server keeps nothing
    quiet.stream_ended([measured, premature, silent], "stream-1")
    assert not quiet.unmeasured_turns
    metrics = EngineMetrics(keep_turns=10)
    metrics.stream_ended([measured, premature, silent], "stream-1")
    (kept,) = metrics.unmeasured_turns
    assert kept["turn_end"] == 5.0 and kept["stream_id"] == "stream-1" and kept["outcome"]["end"] == "vad"
    assert _sample(metrics, "callagent_turn_ends_total", end="vad", hold="") == 0  # in no figure


def test_turns_count_where_their_first_audio_came_from():
    """A reply that opened with a kept recording stamps its first audio without a TTS request: the
    share of such turns is what the kept openings save in the field (the bench's model always
    repeats its opening, a real one less)."""
    metrics = EngineMetrics()
    metrics.observe_turn(_turn(llm_first_token=0.3, tts_request=0.3, tts_first_audio=0.4, first_frame_sent=0.41))
    metrics.observe_turn(_turn(llm_first_token=1.3, tts_first_audio=1.3, first_frame_sent=1.31))
    metrics.observe_turn(_turn(llm_first_token=2.3, tts_first_audio=2.3, first_frame_sent=2.31))
    metrics.observe_turn(_turn(turn_end=3.0, llm_request=3.0))  # no audio yet: neither
    openings = "callagent_turn_openings_total"
    assert _sample(metrics, openings, source="tts") == 1
    assert _sample(metrics, openings, source="kept") == 2
