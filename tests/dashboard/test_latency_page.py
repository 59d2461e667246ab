"""Latency over time: percentiles per stage and bucket, the chart's geometry, the page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from control_plane.dashboard.latency import buckets, chart, percentile, summary
from control_plane.store import Turn, utcnow

from .helpers import secret_of, sign_in, write_call


def _lat(turn_ms: float, llm_ms: float) -> dict:
    return {"turn_latency_ms": turn_ms, "stages_ms": {"llm_first_token": llm_ms, "stt": 40.0}}


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 0.99) == 7.0 and percentile([], 0.5) is None


def test_buckets_split_the_window_and_leave_empty_ones_empty():
    end = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    samples = [(end - timedelta(minutes=58), _lat(500, 200)), (end - timedelta(minutes=57), _lat(900, 600)),
               (end - timedelta(minutes=2), _lat(400, 150)), (end - timedelta(hours=2), _lat(9999, 9999)),
               (end - timedelta(minutes=1), {"turn_latency_ms": True})]
    series = buckets(samples, "turn", end, "hour")
    assert len(series) == 12 and series[0].start == end - timedelta(hours=1)
    assert (series[0].count, series[0].values["p50"], series[0].values["p99"]) == (2, 500.0, 900.0)
    assert [b.count for b in series[1:11]] == [0] * 10 and series[5].values["p95"] is None
    assert series[11].values["p50"] == 400.0
    llm = buckets(samples, "llm_first_token", end, "hour")
    assert llm[0].values["p99"] == 600.0
    drawn = chart(series, "hour")
    assert drawn.top_ms == 1000.0
    assert [len(run.split()) for run in drawn.runs["p50"]] == [1, 1]  # no line across the empty hour
    (x0, y0), (x1, y1) = drawn.lines["p99"]
    assert x0 < x1 and y0 < y1  # 900 ms is drawn higher than 400 ms
    rows = {r["metric"]: r for r in summary(samples)}
    assert rows["turn"]["count"] == 4 and rows["stt"]["p50"] == 40.0 and rows["endpointing"]["count"] == 0


async def test_latency_page_counts_only_this_organisations_recent_turns(h):
    org, headers = await h.org()
    other, _ = await h.org("other")
    repo = await h.cp.repository()
    now = utcnow()
    call = await write_call(repo, org.id, created_at=now - timedelta(minutes=30))
    old = await write_call(repo, org.id, created_at=now - timedelta(days=3))
    foreign = await write_call(repo, other.id, created_at=now - timedelta(minutes=30))
    for i, ms in enumerate((300.0, 500.0, 700.0)):
        await repo.upsert_turn(Turn(call_id=call.id, org_id=org.id, index=i, latency=_lat(ms, ms / 2),
                                    created_at=now - timedelta(minutes=27 - 10 * i)))
    await repo.upsert_turn(Turn(call_id=old.id, org_id=org.id, index=0, latency=_lat(5000, 5000),
                                created_at=now - timedelta(days=3)))
    await repo.upsert_turn(Turn(call_id=foreign.id, org_id=other.id, index=0, latency=_lat(8000, 8000),
                                created_at=now - timedelta(minutes=10)))
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    text = await (await h.client.get("/dashboard/latency?window=hour")).text()
    row = re.search(r"Turn \(to first audio\)</a></td>\s*<td>(\d+)</td>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>"
                    r"\s*<td>([^<]+)</td>", text)
    assert row.groups() == ("3", "500 ms", "700 ms", "700 ms")
    assert "5,000" not in text and "8,000" not in text
    assert text.count("<circle") == 3 * 3  # three turns, each in its own bucket, three quantiles
    day = await (await h.client.get("/dashboard/latency?window=day&metric=llm_first_token")).text()
    assert "LLM first token over time" in day
    bad = await h.client.get("/dashboard/latency?window=<week>")
    assert bad.status == 400 and "<week>" not in await bad.text() and "&lt;week" not in await bad.text()
