"""A turn's latency as a waterfall: its stages laid end to end, on one scale per call.

The turn records keep each stage's duration (``stages_ms`` from
:meth:`engine.timeline.TurnTimeline.stages_ms`), not when each began, so stages are drawn
one after another in pipeline order; a speculative LLM request that began before the turn
ended still shows its full first-token time. Every turn of a call shares the scale of its
slowest turn, so bar lengths compare across turns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STAGES: tuple[tuple[str, str], ...] = (
    ("endpointing", "Endpointing"),
    ("stt", "STT"),
    ("llm_first_token", "LLM first token"),
    ("first_chunk", "First chunk"),
    ("tts_first_audio", "TTS first audio"),
    ("send", "Send"),
)
WIDTH = 600.0
"""The SVG's user-space width the bars are scaled to."""


@dataclass(frozen=True, slots=True)
class Bar:
    stage: str
    label: str
    start_ms: float
    duration_ms: float
    x: float
    width: float


@dataclass(frozen=True, slots=True)
class Waterfall:
    bars: tuple[Bar, ...]
    turn_latency_ms: float | None
    engine_added_ms: float | None
    speculative: bool
    scale_ms: float

    @property
    def total_ms(self) -> float:
        return sum(b.duration_ms for b in self.bars)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value >= 0 else None


def stage_durations(latency: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    stages = latency.get("stages_ms")
    if not isinstance(stages, Mapping):
        return []
    out = []
    for key, label in STAGES:
        value = _number(stages.get(key))
        if value is not None:
            out.append((key, label, value))
    return out


def _extent(latency: Mapping[str, Any]) -> float:
    total = sum(d for _, _, d in stage_durations(latency))
    return max(total, _number(latency.get("turn_latency_ms")) or 0.0)


def waterfalls(latencies: Sequence[Mapping[str, Any]]) -> list[Waterfall | None]:
    """One waterfall per turn (``None`` for a turn without figures), on a shared scale."""
    scale = max((_extent(lat) for lat in latencies), default=0.0) or 1.0
    out: list[Waterfall | None] = []
    for latency in latencies:
        durations = stage_durations(latency)
        if not durations:
            out.append(None)
            continue
        bars, start = [], 0.0
        for key, label, duration in durations:
            bars.append(Bar(stage=key, label=label, start_ms=start, duration_ms=duration,
                            x=round(start / scale * WIDTH, 2), width=round(max(duration / scale * WIDTH, 1.0), 2)))
            start += duration
        out.append(Waterfall(bars=tuple(bars), turn_latency_ms=_number(latency.get("turn_latency_ms")),
                             engine_added_ms=_number(latency.get("engine_added_ms")),
                             speculative=latency.get("speculative") is True, scale_ms=scale))
    return out
