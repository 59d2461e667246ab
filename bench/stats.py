"""Percentiles without numpy."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    data = sorted(values)
    if not data:
        return None
    rank = max(1, math.ceil(q / 100 * len(data)))
    return data[rank - 1]


def summary(values: Iterable[float], qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | None]:
    data = sorted(values)
    out: dict[str, float | None] = {
        f"p{q}": (round(v, 1) if (v := percentile(data, q)) is not None else None) for q in qs
    }
    out["n"] = len(data)
    return out
