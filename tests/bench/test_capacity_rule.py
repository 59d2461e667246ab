"""``callagent bench --capacity`` judges a level by what the load adds to each turn over its unloaded
latency, not by a fixed 400 ms that the providers alone may already take."""

import asyncio

import pytest

from bench.runner import BenchOptions, capacity_rule, level_holds, load_added
from bench.virtual import run_virtual, unloaded_latencies, virtual_options

UNLOADED = {("plain-01", "u1"): 300.0, ("plain-01", "u2"): 370.0, ("plain-02", "u1"): 455.0}


def level(latencies, late_p99=1.0, valid=True):
    turns = [{"script": script, "step": step, "latency_ms": ms} for (script, step), ms in latencies]
    p95 = max(ms for _, ms in latencies) if latencies else None  # (n < 20: the nearest rank is the max)
    return {"turns": turns, "turn_latency_ms": {"p95": p95}, "outbound_late_ms": {"p99": late_p99},
            "valid": valid}


def test_a_level_holds_while_the_load_adds_at_most_the_headroom_to_95_percent_of_its_turns():
    options = BenchOptions(capacity=True, capacity_unloaded_ms=UNLOADED, capacity_headroom_ms=25.0)
    # Above 400 ms but 25 ms over what the providers and rules take unloaded: the core held.
    goodbye = [(("plain-01", "u1"), 310.0)] * 19 + [(("plain-02", "u1"), 480.0)]
    assert level_holds(level(goodbye), options)
    assert load_added(level(goodbye), UNLOADED) == {"p50": 10.0, "p95": 10.0, "p99": 25.0, "n": 20}
    # 1 turn in 20 may take longer (a reply that started on the final instead of being kept)...
    assert level_holds(level([(("plain-01", "u1"), 310.0)] * 19 + [(("plain-01", "u1"), 370.0)]), options)
    # ... but not 2: nor would a fixed 400 ms have seen these, all below it.
    slow = [(("plain-01", "u1"), 310.0)] * 18 + [(("plain-01", "u1"), 370.0)] * 2
    assert not level_holds(level(slow), options)
    assert load_added(level(slow), UNLOADED)["p95"] == 70.0
    assert not level_holds(level(goodbye, late_p99=6.0), options)  # audio went out late
    assert not level_holds(level(goodbye, valid=False), options)  # the load side was the bottleneck
    assert not level_holds(level([(("other", "u1"), 300.0)]), options)  # nothing to compare with
    # Most turns without an unloaded twin: not judged by the few that have one.
    assert not level_holds(level([(("plain-01", "u1"), 310.0)] + [(("other", "u1"), 300.0)] * 2), options)
    assert level_holds(level([(("plain-01", "u1"), 310.0)] * 9 + [(("other", "u1"), 300.0)]), options)
    assert capacity_rule(options) == "load adding ≤ 25 ms to 95 % of turns and p99 lateness ≤ 5 ms"
    assert BenchOptions().capacity_headroom_ms == 50.0


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


def test_the_command_line_measures_the_unloaded_turns_first_and_hands_them_to_the_run(monkeypatch, capsys):
    import bench.runner
    import bench.virtual
    from callagent.cli import main

    asked, ran = [], []
    monkeypatch.setattr(bench.virtual, "unloaded_latencies", lambda options: asked.append(options) or UNLOADED)

    async def run_bench(options):
        ran.append(options)
        return 0

    monkeypatch.setattr(bench.runner, "run_bench", run_bench)
    assert main(["bench", "--capacity", "--callers", "all", "--stt-engine", "telnyx"]) == 0
    (baseline,) = asked
    assert (baseline.callers, baseline.stt_engine, baseline.capacity) == ("all", "telnyx", True)
    assert ran[0].capacity_unloaded_ms == UNLOADED
    assert "first the same callers unloaded" in capsys.readouterr().out
    assert main(["bench", "--calls", "1"]) == 0 and len(asked) == 1  # no baseline without --capacity
    assert ran[1].capacity_unloaded_ms is None
    # None for a server elsewhere, nor with a knowledge base: the fixed target applies.
    assert main(["bench", "--capacity", "--target", "http://127.0.0.1:9"]) == 0
    assert main(["bench", "--capacity", "--knowledge", "100"]) == 0
    assert len(asked) == 1 and ran[2].capacity_unloaded_ms is None and ran[3].capacity_unloaded_ms is None
    assert "no unloaded baseline with --target or --knowledge" in capsys.readouterr().out


def test_callers_that_give_no_turn_to_size_against_get_a_one_line_error(capsys):
    from callagent.cli import main

    assert main(["bench", "--capacity", "--category", "silent"]) == 2
    err = capsys.readouterr().err
    assert "--capacity: the unloaded run measured no turn: nothing to size against" in err
    assert "Traceback" not in err
