"""Latency over time: p50, p95 and p99 of each stage of the organisation's turns, per time
bucket, and the geometry of the chart that draws them (inline SVG, no chart library).

Pure functions over the figures the turn records already keep (``turn_latency_ms`` and
``stages_ms``), so the page costs one query and some arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .waterfall import STAGES

METRICS: tuple[tuple[str, str], ...] = (("turn", "Turn (to first audio)"), *STAGES)
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
WINDOWS: dict[str, tuple[timedelta, int]] = {"hour": (timedelta(hours=1), 12), "day": (timedelta(days=1), 24)}
"""Window name -> (span, buckets): five-minute buckets over the hour, hourly over the day."""
CHART_W, CHART_H, PAD_L, PAD_B = 720.0, 240.0, 48.0, 22.0


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (``None`` for none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def metric_value(latency: Mapping[str, Any], metric: str) -> float | None:
    value = latency.get("turn_latency_ms") if metric == "turn" else (latency.get("stages_ms") or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    count: int
    values: dict[str, float | None]
    """p50/p95/p99 in ms (``None``: no turn in the bucket)."""


def buckets(samples: Sequence[tuple[datetime, Mapping[str, Any]]], metric: str, end: datetime,
            window: str) -> list[Bucket]:
    span, n = WINDOWS[window]
    width = span / n
    start = end - span
    groups: list[list[float]] = [[] for _ in range(n)]
    for at, latency in samples:
        value = metric_value(latency, metric)
        if value is None or not start <= at < end:
            continue
        groups[min(n - 1, int((at - start) / width))].append(value)
    out = []
    for i, group in enumerate(groups):
        group.sort()
        out.append(Bucket(start=start + i * width, count=len(group),
                          values={name: percentile(group, q) for name, q in QUANTILES}))
    return out


def summary(samples: Sequence[tuple[datetime, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per metric over the whole window: turns counted and p50/p95/p99."""
    rows = []
    for metric, label in METRICS:
        values = sorted(v for _, lat in samples if (v := metric_value(lat, metric)) is not None)
        rows.append({"metric": metric, "label": label, "count": len(values),
                     **{name: percentile(values, q) for name, q in QUANTILES}})
    return rows


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 100.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


@dataclass(frozen=True, slots=True)
class Chart:
    lines: dict[str, list[tuple[float, float]]]
    """Quantile -> polyline points (one run per stretch of buckets that have turns)."""
    runs: dict[str, list[str]]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    top_ms: float


def chart(series: Sequence[Bucket], window: str) -> Chart:
    top = _nice_ceiling(max((v for b in series for v in b.values.values() if v is not None), default=0.0))
    plot_w, plot_h = CHART_W - PAD_L - 8, CHART_H - PAD_B - 8
    step = plot_w / max(1, len(series))

    def point(i: int, value: float) -> tuple[float, float]:
        return (round(PAD_L + step * (i + 0.5), 1), round(8 + plot_h * (1 - value / top), 1))

    lines: dict[str, list[tuple[float, float]]] = {}
    runs: dict[str, list[str]] = {}
    for name, _ in QUANTILES:
        points: list[tuple[float, float]] = []
        current: list[tuple[float, float]] = []
        pieces: list[list[tuple[float, float]]] = []
        for i, bucket in enumerate(series):
            value = bucket.values[name]
            if value is None:  # a gap: no turns then, so no line through it
                if current:
                    pieces.append(current)
                current = []
                continue
            p = point(i, value)
            points.append(p)
            current.append(p)
        if current:
            pieces.append(current)
        lines[name] = points
        runs[name] = [" ".join(f"{x},{y}" for x, y in piece) for piece in pieces]
    y_ticks = [(round(8 + plot_h * (1 - f), 1), f"{top * f:,.0f}") for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    fmt = "%H:%M"
    every = 3 if window == "hour" else 4
    x_ticks = [(round(PAD_L + step * (i + 0.5), 1), b.start.strftime(fmt))
               for i, b in enumerate(series) if i % every == 0]
    return Chart(lines=lines, runs=runs, y_ticks=y_ticks, x_ticks=x_ticks, top_ms=top)
