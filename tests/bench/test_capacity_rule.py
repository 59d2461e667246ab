"""``callagent bench --capacity`` judges a level by what the load adds to the p95 its own turns take
unloaded, not by a fixed 400 ms that the providers alone may already take."""

import asyncio

import pytest

from bench.runner import BenchOptions, capacity_rule, level_holds
from bench.virtual import run_virtual, unloaded_latencies, virtual_options

UNLOADED = {("plain-01", "u1"): 300.0, ("plain-01", "u2"): 370.0, ("plain-02", "u1"): 455.0}


def level(latencies, late_p99=1.0, valid=True):
    turns = [{"script": script, "step": step, "latency_ms": ms} for (script, step), ms in latencies]
    p95 = max(ms for _, ms in latencies) if latencies else None  # (n < 20: the nearest rank is the max)
    return {"turns": turns, "turn_latency_ms": {"p95": p95}, "outbound_late_ms": {"p99": late_p99},
            "valid": valid}


def test_a_level_holds_while_the_load_adds_at_most_the_headroom_to_its_turns_unloaded_p95():
    options = BenchOptions(capacity=True, capacity_unloaded_ms=UNLOADED, capacity_headroom_ms=25.0)
    goodbye = [(("plain-01", "u1"), 310.0), (("plain-02", "u1"), 480.0)]
    assert level_holds(data := level(goodbye), options)  # above 400: the providers' time, not the core's
    assert data["unloaded_p95_ms"] == 455.0
    assert not level_holds(level([(("plain-01", "u1"), 310.0), (("plain-02", "u1"), 481.0)]), options)
    # The same 420 ms p95 over a mix without the slow goodbye: the load added 50 ms.
    assert not level_holds(data := level([(("plain-01", "u1"), 310.0), (("plain-01", "u2"), 420.0)]), options)
    assert data["unloaded_p95_ms"] == 370.0
    assert not level_holds(level(goodbye, late_p99=6.0), options)  # audio went out late
    assert not level_holds(level(goodbye, valid=False), options)  # the load side was the bottleneck
    assert not level_holds(level([(("other", "u1"), 300.0)]), options)  # nothing to compare with
    assert capacity_rule(options) == "p95 within 25 ms of its turns' unloaded p95 and p99 lateness ≤ 5 ms"


def test_without_unloaded_figures_the_product_target_applies():
    options = BenchOptions(capacity=True)
    assert level_holds(level([(("a", "u1"), 399.0)]), options)
    assert not level_holds(level([(("a", "u1"), 400.0)]), options)
    assert capacity_rule(options) == "p95 < 400 ms and p99 lateness ≤ 5 ms"


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_the_unloaded_latencies_are_the_virtual_clocks_for_the_same_callers():
    options = BenchOptions(categories=("plain",), stt_engine="telnyx", mark_echo="never")
    expected = await run_virtual(virtual_options(categories=("plain",), stt_engine="telnyx", mark_echo="never"))
    got = await asyncio.to_thread(unloaded_latencies, options)  # a loop of its own
    assert got == {(t["script"], t["step"]): t["latency_ms"] for t in expected["turns"] if t["latency_ms"]}
    assert len(got) >= 10 and min(got.values()) > 400  # a finals-only engine: the providers' time alone
