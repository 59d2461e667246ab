"""The engine's per-turn provider families: TTFB by provider, errors by provider."""

from __future__ import annotations

from engine.metrics import EngineMetrics
from engine.timeline import TurnTimeline


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
