"""The campaign bench (``callagent bench --campaign``): a small, time-scaled campaign end to end.

With talking callees (the default) the app runs the call agent on every media stream and the
people who answer play corpus calls, so the run measures turn latency while the dialer runs;
with ``talk_ratio=0`` the callees stay silent and no agent runs. Neither test asserts how fast
anything was (shared machines): only exactness (no duplicate dial, no lost contact) and that
the figures are there.
"""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from bench.campaign import KEYS, _Callees, _QuietCallee, default_calls_per_minute, run_campaign_bench, summary_lines

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # whole campaign benchmarks through the emulators

STABLE_KEYS = set(KEYS) | {
    "dials", "accepted_contacts", "statuses", "contacts", "concurrency", "calls_per_minute", "completed",
    "upload_s", "max_live_calls", "calls_placed", "successful_calls", "cost", "backend", "redis", "time_scale",
    "call_s", "emulator_process", "talk_ratio", "conversations", "conversations_completed", "conversation_s",
    "premature_replies", "engine_turn_latency_ms", "app_cpu_pct", "load_cpu_pct", "concurrency_capped",
    "cpu_bound", "usage",
}


def _call(answer: str) -> SimpleNamespace:
    return SimpleNamespace(behaviour=SimpleNamespace(answer=answer), answered_at=None)


def test_callees_spread_the_talkers_and_round_robin_over_plain_scripts() -> None:
    callees = _Callees(call_s=1.0, talk_ratio=0.5)
    assert callees.scripts and {s.category for s in callees.scripts} == {"plain"}
    assert isinstance(callees(_call("voicemail")), _QuietCallee)  # machines stay silent
    picked = [callees(_call("human")) for _ in range(2 * len(callees.scripts) * 2)]
    talking = [c for c in picked if not isinstance(c, _QuietCallee)]
    assert len(talking) == len(picked) // 2
    assert all(isinstance(picked[i], _QuietCallee) != isinstance(picked[i + 1], _QuietCallee)
               for i in range(0, len(picked), 2))
    assert [c.script.name for c in talking] == [s.name for s in callees.scripts] * 2
    assert all(isinstance(_Callees(call_s=1.0, talk_ratio=0.0)(_call("human")), _QuietCallee) for _ in range(5))


def test_default_pace_keeps_talking_campaigns_under_the_concurrency_cap() -> None:
    assert default_calls_per_minute(0.0) == 1200
    assert default_calls_per_minute(1.0, 100) == 180
    assert default_calls_per_minute(0.3, 10) == 18
    assert default_calls_per_minute(1.0, 10_000) == 1200


async def test_small_campaign_with_conversations_measures_turns_while_dialing(tmp_path) -> None:
    figures = await run_campaign_bench(
        contacts=16, concurrency=20, calls_per_minute=600, json_path=tmp_path / "campaign.json", timeout_s=120)
    assert figures["completed"]
    assert figures["duplicate_dials"] == 0
    assert figures["lost_contacts"] == 0
    assert figures["outcomes"].get("human", 0) > 0 and figures["outcomes"].get("voicemail", 0) > 0
    assert figures["conversations"] == figures["outcomes"]["human"]  # every person who answered talked
    assert figures["turns"] > 0
    assert figures["turn_latency_ms"]["n"] == figures["turns"]
    p50 = figures["turn_latency_ms"]["p50"]
    assert isinstance(p50, float) and p50 > 0
    assert set(figures["turn_latency_ms"]) >= {"p50", "p95", "p99"}
    assert isinstance(figures["missed_turns"], int)  # counted (how many is a figure, not a pass mark here)
    assert figures["engine_turn_latency_ms"]["n"] > 0  # the agent ran in the app
    assert set(figures) >= STABLE_KEYS
    # Usage and cost: the organisation's total is the sum of its calls' own line items, and the
    # tokens counted are the ones the LLM emulator reported, less those of replies cut off between
    # the server's usage chunk and the agent reading it (issue 18, item 4).
    usage = figures["usage"]
    assert usage["calls"] == figures["calls_placed"]
    assert usage["llm_prompt_tokens"] > 0 and usage["llm_completion_tokens"] > 0
    assert usage["stt_seconds"] > 0 and usage["tts_characters"] > 0 and usage["tts_seconds"] > 0
    assert usage["calls_tokens_sum"] == {
        "prompt_tokens": usage["llm_prompt_tokens"], "completion_tokens": usage["llm_completion_tokens"]}
    assert all(n >= 0 for n in usage["unreported_tokens"].values())
    assert usage["calls_cost_sum"] == usage["cost"]["total"] and Decimal(usage["cost"]["total"]) > 0
    assert usage["parts_match"] is True
    assert json.loads((tmp_path / "campaign.json").read_text()) == json.loads(json.dumps(figures))
    assert any(line.startswith("turn_latency_ms") for line in summary_lines(figures))


async def test_small_campaign_with_silent_callees_keeps_the_keys() -> None:
    figures = await run_campaign_bench(contacts=20, concurrency=20, calls_per_minute=1200, talk_ratio=0.0,
                                       emulator_process=False, timeout_s=60)
    assert figures["completed"]
    assert figures["duplicate_dials"] == 0
    assert figures["lost_contacts"] == 0
    assert figures["turns"] == 0 and figures["conversations"] == 0
    assert figures["turn_latency_ms"]["p50"] is None
    assert set(figures) >= STABLE_KEYS
