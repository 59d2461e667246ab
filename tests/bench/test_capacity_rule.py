"""``callagent bench --capacity`` judges a level by what the load adds to the unloaded p95, not by a
fixed 400 ms that the providers alone may already take."""

import threading

import pytest

from bench.runner import BenchOptions, capacity_rule, level_holds
from bench.virtual import run_virtual, unloaded_p95, virtual_options


def level(p95, late_p99=1.0, valid=True):
    return {"turn_latency_ms": {"p95": p95}, "outbound_late_ms": {"p99": late_p99}, "valid": valid}


def test_a_level_holds_while_the_load_adds_at_most_the_headroom_to_the_unloaded_p95():
    options = BenchOptions(capacity=True, capacity_unloaded_p95_ms=455.0, capacity_headroom_ms=25.0)
    assert level_holds(level(455.0), options)
    assert level_holds(level(480.0), options)  # above 400: the providers' time, not the core's
    assert not level_holds(level(481.0), options)
    assert not level_holds(level(460.0, late_p99=6.0), options)  # audio went out late
    assert not level_holds(level(460.0, valid=False), options)  # the load side was the bottleneck
    assert not level_holds(level(None), options)
    assert capacity_rule(options) == "p95 within 25 ms of the unloaded 455 ms and p99 lateness ≤ 5 ms"


def test_without_an_unloaded_figure_the_product_target_applies():
    options = BenchOptions(capacity=True)
    assert level_holds(level(399.0), options) and not level_holds(level(400.0), options)
    assert capacity_rule(options) == "p95 < 400 ms and p99 lateness ≤ 5 ms"


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_the_unloaded_p95_is_the_virtual_clocks_for_the_same_callers():
    options = BenchOptions(categories=("plain",), stt_engine="telnyx", mark_echo="never")
    expected = (await run_virtual(virtual_options(categories=("plain",), stt_engine="telnyx",
                                                  mark_echo="never")))["turn_latency_ms"]["p95"]
    got: list[float] = []
    worker = threading.Thread(target=lambda: got.append(unloaded_p95(options)))  # its own loop
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    assert got == [expected] and expected > 400  # a finals-only engine: the providers' time alone
