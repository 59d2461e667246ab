"""The latency page: p50/p95/p99 per stage over the last hour or day, as a table and a chart."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from ..store import utcnow
from .latency import CHART_H, CHART_W, METRICS, PAD_L, QUANTILES, WINDOWS, buckets, chart, summary
from .pages import dashboard_of, page, viewer_of

MAX_SAMPLES = 50_000
"""Most turns read for one page (the newest): enough for steady percentiles, bounded work."""
LONGEST_CALL = timedelta(hours=2)
"""A turn in the window belongs to a call created at most this long before it (bounds the scan)."""


async def latency(request: web.Request) -> web.Response:
    window = request.query.get("window", "hour")
    metric = request.query.get("metric", "turn")
    if window not in WINDOWS or metric not in dict(METRICS):
        return page(request, "error.html", {"status": 400, "message": "window must be hour or day, and metric one "
                                            "of " + ", ".join(m for m, _ in METRICS) + "."}, status=400)
    end = utcnow()
    since = end - WINDOWS[window][0]
    repo = await dashboard_of(request).cp.repository()
    samples = await repo.list_turn_latencies(viewer_of(request).org.id, since=since, calls_since=since - LONGEST_CALL,
                                             limit=MAX_SAMPLES)
    series = buckets(samples, metric, end, window)
    return page(request, "latency.html", {
        "window": window, "metric": metric, "metrics": METRICS, "windows": list(WINDOWS),
        "quantiles": [name for name, _ in QUANTILES], "summary": summary(samples), "series": series,
        "chart": chart(series, window), "turns": len(samples), "capped": len(samples) >= MAX_SAMPLES,
        "w": CHART_W, "h": CHART_H, "pad_l": PAD_L, "label": dict(METRICS)[metric],
    })
