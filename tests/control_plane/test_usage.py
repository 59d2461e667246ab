"""Usage and cost (issue 18, item 4): each call's usage as its agents reported it, priced per line
item from the price table, Telnyx's call.cost replacing the minutes estimate; GET /api/usage
totals per organisation, day and campaign that are exactly the sum of the calls' own lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from control_plane.pricing import PriceTable, billed_seconds, price_call
from control_plane.store import Call
from control_plane.store.usage import UsageFigures

from .helpers import make_campaign

DAY1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


async def _call(repo, org_id, at, *, seconds=None, campaign_id=None, cost=None):
    return await repo.create_call(Call(
        id=uuid4(), org_id=org_id, direction="outbound", to_number="+14155550123", from_number="+14155550100",
        status="completed", created_at=at, updated_at=at, answered_at=at if seconds is not None else None,
        ended_at=at + timedelta(seconds=seconds or 0), campaign_id=campaign_id, cost_amount=cost,
        cost_currency="USD" if cost is not None else None))


def test_minutes_are_billed_in_six_second_increments_and_call_cost_replaces_them():
    assert [billed_seconds(s, 6) for s in (0, 0.5, 1, 6, 6.001, 7, 61)] == [0, 6, 6, 6, 12, 12, 66]
    table = PriceTable()
    lines = price_call(table, seconds=61, stt_seconds=30, tts_characters=1000, tts_seconds=12,
                       prompt_tokens=10_000, completion_tokens=1000, telnyx_cost=None)
    assert lines.telephony == Decimal("0.011") and lines.telephony_source == "estimate"  # 66 s x 0.01 / 60
    assert lines.stt == Decimal("0.00215") and lines.tts == Decimal("0.015")
    assert lines.llm == Decimal("0.0021")  # 10k x 0.15 / 1M + 1k x 0.60 / 1M
    assert lines.total == lines.telephony + lines.streaming + lines.stt + lines.tts + lines.llm
    billed = price_call(table, seconds=61, stt_seconds=0, tts_characters=0, tts_seconds=0, prompt_tokens=0,
                        completion_tokens=0, telnyx_cost=Decimal("0.0125"))
    assert billed.telephony == Decimal("0.0125") and billed.telephony_source == "telnyx"


def test_usage_from_an_agent_report_keeps_only_sane_numbers():
    figures = UsageFigures.parse({"llm_prompt_tokens": 12, "llm_completion_tokens": True, "stt_seconds": -1,
                                  "tts_characters": "9", "tts_seconds": 2.5, "other": 1})
    assert figures == UsageFigures(llm_prompt_tokens=12, tts_seconds=2.5)
    assert UsageFigures.parse(None) == UsageFigures()


async def test_usage_is_stored_turn_by_turn_so_a_killed_instance_loses_at_most_one_turns(h):
    from control_plane.pipeline import StoreReporter
    from engine.conversation.ports import CallReport, TurnRecord

    def running(turns: int) -> dict[str, float]:  # an agent's running totals after ``turns`` turns
        return {"llm_requests": turns, "llm_prompt_tokens": 100 * turns, "llm_completion_tokens": 10 * turns,
                "stt_seconds": 2.5 * turns, "tts_characters": 30 * turns, "tts_seconds": 1.5 * turns}

    org, headers = await h.org()
    repo = await h.cp.repository()
    call = await _call(repo, org.id, DAY1, seconds=61)
    await repo.update_call(call.id, lambda c: c.model_copy(update={"call_control_id": "v3:turns"}))
    meta = {"call_id": call.id, "org_id": org.id}
    killed = StoreReporter(h.cp, meta)  # the first instance's agent: two turns, then SIGKILL (no report)
    for n in (1, 2):
        await killed.turn("v3:turns", TurnRecord(index=n, caller_text="hi", agent_text="hello",
                                                 interrupted=False, timeline={}, usage=running(n)))

    async def usage() -> dict[str, float]:
        return (await (await h.client.get(f"/api/calls/{call.id}", headers=headers)).json())["usage"]

    assert await usage() == running(2)  # not lost with the instance
    resumed = StoreReporter(h.cp, meta)  # the survivor's agent, its own running totals from 0
    await resumed.turn("v3:turns", TurnRecord(index=3, caller_text="hi", agent_text="hello",
                                              interrupted=False, timeline={}, usage=running(1)))
    await resumed.finished(CallReport(call_control_id="v3:turns", transcript=[], summary="s", outcome=None,
                                      end_reason="hangup", turns=3, usage=running(2)))
    assert await usage() == running(4)  # each agent's totals once: nothing counted twice


async def test_a_calls_agents_add_their_usage_and_fill_the_outcomes_tokens(h):
    org, headers = await h.org()
    repo = await h.cp.repository()
    call = await _call(repo, org.id, DAY1, seconds=61)
    call = await repo.update_call(call.id, lambda c: c.model_copy(update={"call_control_id": "v3:usage"}))
    first = {"llm_requests": 2, "llm_prompt_tokens": 300, "llm_completion_tokens": 40, "stt_seconds": 20.5,
             "tts_characters": 120, "tts_seconds": 8.25}
    await h.cp.recorder.finish("v3:usage", summary="s", outcome={"outcome": "resolved"}, usage=first)
    # The stream was picked up again: the second agent adds its own.
    await h.cp.recorder.finish("v3:usage", outcome={"outcome": "resolved"}, usage={**first, "llm_requests": 1})
    stored = await repo.get_call(org.id, call.id)
    assert stored.outcome == {"outcome": "resolved", "llm_tokens": 680}
    response = await h.client.get(f"/api/calls/{call.id}", headers=headers)
    body = await response.json()
    assert body["usage"] == {"llm_requests": 3, "llm_prompt_tokens": 600, "llm_completion_tokens": 80,
                             "stt_seconds": 41.0, "tts_characters": 240, "tts_seconds": 16.5}
    items = body["cost_items"]
    assert items["telephony_source"] == "estimate" and items["telephony"] == "0.011000"
    lines = ("telephony", "streaming", "stt", "tts", "llm")
    assert Decimal(items["total"]) == sum(Decimal(items[k]) for k in lines)

    # Telnyx's call.cost, when it comes, replaces the minutes estimate.
    await repo.update_call(call.id, lambda c: c.model_copy(update={"cost_amount": Decimal("0.02"),
                                                                   "cost_currency": "USD"}))
    items = (await (await h.client.get(f"/api/calls/{call.id}", headers=headers)).json())["cost_items"]
    assert items["telephony_source"] == "telnyx" and Decimal(items["telephony"]) == Decimal("0.02")


async def test_usage_totals_are_the_sum_of_the_calls_per_day_and_campaign_and_org_scoped(h):
    org, headers = await h.org("A")
    other, other_headers = await h.org("B")
    repo = await h.cp.repository()
    campaign = await make_campaign(repo, org.id, "spring")
    calls = [
        await _call(repo, org.id, DAY1, seconds=61),
        await _call(repo, org.id, DAY1 + timedelta(hours=1), seconds=7, campaign_id=campaign.id,
                    cost=Decimal("0.0042")),
        await _call(repo, org.id, DAY2, seconds=125, campaign_id=campaign.id),
        await _call(repo, org.id, DAY2 + timedelta(hours=2)),  # never answered, no agent
    ]
    for i, call in enumerate(calls[:3]):
        await repo.add_usage(call.id, org.id, UsageFigures(
            llm_requests=i + 1, llm_prompt_tokens=1000 * (i + 1), llm_completion_tokens=77 * (i + 1),
            stt_seconds=10.5 * (i + 1), tts_characters=333 * (i + 1), tts_seconds=4.0 * (i + 1)), DAY2)
    theirs = await _call(repo, other.id, DAY1, seconds=600)
    await repo.add_usage(theirs.id, other.id, UsageFigures(llm_prompt_tokens=10**6), DAY2)

    per_call = Decimal(0)
    for call in calls:
        body = await (await h.client.get(f"/api/calls/{call.id}", headers=headers)).json()
        per_call += Decimal(body["cost_items"]["total"])

    report = await (await h.client.get("/api/usage", headers=headers)).json()
    total = report["total"]
    assert total["calls"] == 4 and total["llm_prompt_tokens"] == 6000 and total["llm_completion_tokens"] == 462
    assert total["tts_characters"] == 1998 and total["stt_seconds"] == 63.0 and total["telnyx_costed_calls"] == 1
    assert Decimal(total["cost"]["total"]) == per_call > 0 and total["cost"]["currency"] == "USD"
    assert report["groups"] == []

    by_day = await (await h.client.get("/api/usage", params={"group_by": "day"}, headers=headers)).json()
    assert [g["key"] for g in by_day["groups"]] == ["2026-03-01", "2026-03-02"]
    assert [g["calls"] for g in by_day["groups"]] == [2, 2]
    for name in ("telephony", "streaming", "stt", "tts", "llm", "total"):
        assert sum(Decimal(g["cost"][name]) for g in by_day["groups"]) == Decimal(total["cost"][name])

    by_campaign = await (await h.client.get("/api/usage", params={"group_by": "campaign"},
                                            headers=headers)).json()
    groups = {g["key"]: g for g in by_campaign["groups"]}
    assert set(groups) == {str(campaign.id), None} and groups[str(campaign.id)]["calls"] == 2
    assert groups[str(campaign.id)]["llm_prompt_tokens"] == 5000
    assert sum(Decimal(g["cost"]["total"]) for g in groups.values()) == per_call

    window = {"from": DAY2.isoformat(), "to": (DAY2 + timedelta(days=1)).isoformat()}
    day2 = await (await h.client.get("/api/usage", params=window, headers=headers)).json()
    assert day2["total"]["calls"] == 2 and day2["total"]["llm_prompt_tokens"] == 3000

    mine_only = await (await h.client.get("/api/usage", headers=other_headers)).json()
    assert mine_only["total"]["calls"] == 1 and mine_only["total"]["llm_prompt_tokens"] == 10**6
    missing = await h.client.get(f"/api/calls/{theirs.id}", headers=headers)
    assert missing.status == 404


@pytest.mark.parametrize("params", [{"group_by": "week"}, {"from": "yesterday"},
                                    {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
                                    {"extra": "1"}])
async def test_bad_usage_queries_are_clear_400s(h, params):
    _, headers = await h.org()
    response = await h.client.get("/api/usage", params=params, headers=headers)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "validation_error"
    assert (await h.client.get("/api/usage")).status == 401
