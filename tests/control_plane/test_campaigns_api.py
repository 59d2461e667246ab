"""Campaigns API and the dialer's rules, driven step by step against a recording Telnyx double:
validation, CSV reports and de-duplication, organisation isolation, pause/resume/cancel,
calling windows and DNC at claim time, caps and caller-ID rotation, retries, outcomes, cost."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from control_plane.callstate import client_state_for
from control_plane.campaigns.outcomes import call_id_for
from control_plane.campaigns.store import CampaignStore
from tests.fixtures.servers import sqlite_only
from tests.fixtures.waiting import eventually

from .conftest import make_settings
from .fakes import Harness, encoded_state, harness

AGENT = {"personality": "friendly", "voice": "Telnyx.NaturalHD.astra", "language": "en-US"}


def _settings(base: Any, **overrides: Any) -> Any:
    """The parametrized backend's settings, with the background dialer off (tests drive it)."""
    campaigns = {"dialer": False, **overrides.pop("campaigns", {})}
    return make_settings(base.data_dir, backend="postgres" if base.database_url else "sqlite",
                         pg_schema=base.store.schema_name, campaigns=campaigns,
                         api={"call_starts_per_minute": 100_000}, **overrides)


def _local(tmp_path: Path, **overrides: Any) -> Any:
    campaigns = {"dialer": False, **overrides.pop("campaigns", {})}
    return make_settings(tmp_path, campaigns=campaigns, api={"call_starts_per_minute": 100_000}, **overrides)


@pytest.fixture
def settings(settings: Any) -> Any:
    """The parametrized backend's, with the background dialer off and no start-rate limit (see ``_settings``)."""
    return _settings(settings)


async def _create(h: Harness, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    body = {"name": "spring", "agent_config": AGENT, "caller_numbers": ["+14155550100"],
            "calls_per_minute": 60_000, **extra}
    response = await h.client.post("/api/campaigns", json=body, headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def _csv(h: Harness, headers: dict[str, str], campaign_id: str, text: str | bytes) -> tuple[int, Any]:
    data = text.encode() if isinstance(text, str) else text
    response = await h.client.post(f"/api/campaigns/{campaign_id}/contacts", data=data,
                                   headers={**headers, "Content-Type": "text/csv"})
    return response.status, await response.json()


async def _action(h: Harness, headers: dict[str, str], campaign_id: str, action: str) -> tuple[int, Any]:
    response = await h.client.post(f"/api/campaigns/{campaign_id}/{action}", headers=headers)
    return response.status, await response.json()


async def _get(h: Harness, headers: dict[str, str], campaign_id: str) -> dict[str, Any]:
    response = await h.client.get(f"/api/campaigns/{campaign_id}", headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def _store(h: Harness) -> CampaignStore:
    return await h.cp.campaigns.store()


async def _run(h: Harness, campaign_id: str, *, limit: int = 100) -> list[str]:
    """Step the campaign's runner until it has nothing to do; returns the step results."""
    runner = h.cp.campaigns.dialer.runner(uuid.UUID(campaign_id))
    states = []
    for _ in range(limit):
        state = await runner.step(sweep=False)
        await h.cp.campaigns.dialer.drain()
        states.append(state)
        if state != "worked":
            break
    return states


def _dialled(h: Harness) -> list[dict[str, Any]]:
    return h.telnyx.named("dial")


async def _contacts(h: Harness, campaign_id: str) -> dict[str, Any]:
    return {c.phone: c for c in await (await _store(h)).contacts(uuid.UUID(campaign_id))}


async def _hangup(h: Harness, dial: dict[str, Any], ccid: str, cause: str, **extra: Any) -> None:
    payload = {"call_control_id": ccid, "client_state": encoded_state(client_state_for(uuid.UUID(dial["command_id"]))),
               "hangup_cause": cause, **extra}
    assert (await h.webhook("call.hangup", payload)).status == 200
    await h.settle()


async def _ccid(h: Harness, call_id: str) -> str:
    call = await (await h.cp.repository()).get_call_unscoped(uuid.UUID(call_id))
    assert call is not None and call.call_control_id
    return call.call_control_id


# -- creating ------------------------------------------------------------------------------------


@sqlite_only
async def test_create_validates_like_the_calls_api(h):
    _, headers = await h.org()

    async def post(**body: Any) -> tuple[int, Any]:
        response = await h.client.post("/api/campaigns", json=body, headers=headers)
        return response.status, await response.json()

    base = {"name": "spring", "agent_config": AGENT, "caller_numbers": ["+14155550100"]}
    status, body = await post(**{**base, "agent_config": {**AGENT, "personality": "nobody"}})
    assert status == 422 and body["error"]["code"] == "invalid_agent_config"
    for broken in ({"caller_numbers": []}, {"caller_numbers": ["12"]}, {"calls_per_minute": 0},
                   {"window": {"start": "09:00", "end": "09:00"}}, {"window": {"timezone": "Mars/Base"}},
                   {"window": {"start": "9am"}}, {"voicemail": {"action": "message"}}, {"surprise": 1},
                   {"retry": {"on": ["sometimes"]}}, {"max_concurrent_calls": "10"},
                   {"voicemail": {"language": "en"}}):  # Telnyx's speak wants en-US and the like
        status, body = await post(**{**base, **broken})
        assert status == 400 and body["error"]["code"] == "validation_error", broken
        assert "Mars" not in json.dumps(body)  # submitted values are not echoed
    created = await _create(h, headers, caller_numbers=["+1 (415) 555-0100", "+14155550199"],
                            window={"start": "09:00", "end": "20:00", "days": ["sat", "mon"],
                                    "timezone": "Europe/Paris"},
                            retry={"on": ["busy"], "max_attempts": 2, "backoff_s": 600})
    assert created["status"] == "draft" and created["total_contacts"] == 0
    config = created["config"]
    assert config["caller_numbers"] == ["+14155550100", "+14155550199"]
    assert config["window"]["days"] == ["mon", "sat"] and config["retry"]["max_attempts"] == 2
    assert created["agent_config"] == AGENT
    assert await _get(h, headers, created["id"]) == created
    listed = await (await h.client.get("/api/campaigns", headers=headers)).json()
    assert [c["id"] for c in listed["data"]] == [created["id"]]
    spoken = await _create(h, headers, voicemail={"action": "message", "message": "Hi", "language": "en-GB"})
    assert spoken["config"]["voicemail"]["language"] == "en-GB"


# -- contacts ---------------------------------------------------------------------------------------

CSV = (
    "phone,name,timezone,company\n"
    "+14155550101,Ann,America/Los_Angeles,Acme\n"       # 2
    "not-a-number,Bob,,Beta\n"                           # 3
    "+14155550102,Cy,Mars/Olympus,Gamma\n"               # 4
    ",Dee,,\n"                                           # 5
    "+1 (415) 555-0101,Ann again,,\n"                    # 6: the same number as row 2
    '"+14155550103","Smith, ""Jr""",,"two\nlines"\n'     # 7: quoted, one record over two lines
    "\n"                                                 # 8: blank
    "+14155550104,Eve,,Delta\n"                          # 9
)


async def test_csv_upload_reports_rejected_rows_and_dedupes(h):
    _, headers = await h.org()
    campaign = await _create(h, headers)
    status, report = await _csv(h, headers, campaign["id"], CSV)
    assert status == 200, report
    assert (report["received"], report["accepted"], report["rejected"], report["duplicates"]) == (7, 3, 4, 1)
    assert [(r["row"], r["reason"].split(" (")[0]) for r in report["rejected_rows"]] == [
        (3, "invalid phone number"), (4, "unknown time zone"), (5, "missing phone number"), (6, "duplicate")]
    assert report["rejected_rows_truncated"] is False and report["total_contacts"] == 3
    assert report["rejected_by_reason"]["duplicate"] == 1

    # Again, plus one new number: everything already there is a duplicate.
    status, again = await _csv(h, headers, campaign["id"], CSV + "+14155550105,New,,\n")
    assert (again["accepted"], again["duplicates"], again["total_contacts"]) == (1, 4, 4)

    # JSON: per-row validation too.
    response = await h.client.post(f"/api/campaigns/{campaign['id']}/contacts", headers=headers, json={
        "contacts": [{"phone": "+14155550106", "name": "Jo", "variables": {"plan": "gold"}},
                     {"phone": 14155550107}, "nope", {"phone": "+14155550108", "extra": 1},
                     {"phone": "+14155550104"}]})
    report = await response.json()
    assert response.status == 200 and report["accepted"] == 1 and report["rejected"] == 4
    assert [r["row"] for r in report["rejected_rows"]] == [2, 3, 4, 5]

    contacts = await _contacts(h, campaign["id"])
    assert contacts["+14155550101"].data == {"name": "Ann", "timezone": "America/Los_Angeles",
                                             "variables": {"company": "Acme"}}
    assert contacts["+14155550103"].data == {"name": 'Smith, "Jr"', "variables": {"company": "two\nlines"}}
    assert contacts["+14155550106"].data == {"name": "Jo", "variables": {"plan": "gold"}}
    # Numbers are sealed at rest: the database holds none of them in clear.
    async with (await h.cp.repository()).connection() as conn:
        rows = await conn.fetch("SELECT * FROM campaign_contacts")
    assert "4155550101" not in repr(rows) and "Acme" not in repr(rows)

    for bad_type in ("application/xml", "application/octet-stream"):
        response = await h.client.post(f"/api/campaigns/{campaign['id']}/contacts", data=b"x",
                                       headers={**headers, "Content-Type": bad_type})
        assert response.status == 415


async def test_rejected_rows_list_is_capped_and_headerless_csv_works(tmp_path):
    async with harness(_local(tmp_path, campaigns={"max_rejected_listed": 2, "max_upload_rows": 50})) as h:
        _, headers = await h.org()
        campaign = await _create(h, headers)
        text = "+14155550101,Ann,vip\n" + "".join(f"bad{i}\n" for i in range(5)) + "\xff\xfe,x\n"
        status, report = await _csv(h, headers, campaign["id"], text.encode("latin-1"))
        assert status == 200 and report["accepted"] == 1 and report["rejected"] == 6
        assert len(report["rejected_rows"]) == 2 and report["rejected_rows_truncated"] is True
        contact = (await _contacts(h, campaign["id"]))["+14155550101"]
        assert contact.data == {"name": "Ann", "variables": {"column_3": "vip"}}
        status, body = await _csv(h, headers, campaign["id"], "".join(f"+1415555{i:04d}\n" for i in range(60)))
        assert status == 413 and body["error"]["code"] == "too_many_rows"


@pytest.mark.slow
async def test_a_large_csv_is_streamed_and_written_in_batches(tmp_path):
    rows = 20_000
    async with harness(_local(tmp_path, campaigns={"import_batch_size": 500})) as h:
        _, headers = await h.org()
        campaign = await _create(h, headers)
        store = await _store(h)
        batches: list[int] = []
        original = store.import_batch

        async def counting(org_id: Any, campaign_id: Any, contacts: Any) -> Any:
            batches.append(len(contacts))
            return await original(org_id, campaign_id, contacts)

        store.import_batch = counting  # type: ignore[method-assign]
        written_mid_upload: list[int] = []

        async def a_batch_written() -> int:
            return max(0, await store.count_contacts(uuid.UUID(campaign["id"])) - 499)

        async def body() -> Any:
            yield b"phone,name,segment\n"
            for start in range(0, rows, 1000):
                if start == rows // 2:  # the server catches up with the first half: rows are in
                    await eventually(a_batch_written, what="a batch written while the upload goes on")
                    written_mid_upload.append(await store.count_contacts(uuid.UUID(campaign["id"])))
                yield "".join(f"+1212{i:07d},Person {i},s{i % 7}\n" for i in range(start, start + 1000)).encode()

        response = await h.client.post(f"/api/campaigns/{campaign['id']}/contacts", data=body(),
                                       headers={**headers, "Content-Type": "text/csv"})
        report = await response.json()
        assert response.status == 200 and report["accepted"] == rows and report["rejected"] == 0
        assert max(batches) == 500 and sum(batches) == rows
        # Rows were in the database while the upload was still being sent: it is not buffered whole.
        assert written_mid_upload and written_mid_upload[0] >= 500


@sqlite_only
async def test_other_organisations_campaigns_are_404(h):
    _, headers_a = await h.org("A")
    _, headers_b = await h.org("B")
    campaign = await _create(h, headers_a)
    cid = campaign["id"]
    assert (await _csv(h, headers_a, cid, "+14155550101\n"))[0] == 200
    for method, path in (("GET", f"/api/campaigns/{cid}"), ("POST", f"/api/campaigns/{cid}/start"),
                         ("POST", f"/api/campaigns/{cid}/pause"), ("POST", f"/api/campaigns/{cid}/resume"),
                         ("POST", f"/api/campaigns/{cid}/cancel"), ("GET", "/api/campaigns/not-a-uuid"),
                         ("GET", f"/api/campaigns/{uuid.uuid4()}")):
        response = await h.client.request(method, path, headers=headers_b)
        assert response.status == 404 and (await response.json())["error"]["code"] == "not_found", path
    assert (await _csv(h, headers_b, cid, "+14155550102\n"))[0] == 404
    assert (await (await h.client.get("/api/campaigns", headers=headers_b)).json())["data"] == []
    assert (await h.client.get(f"/api/campaigns/{cid}")).status == 401
    assert (await _get(h, headers_a, cid))["total_contacts"] == 1


# -- the lifecycle ------------------------------------------------------------------------------------


async def test_pause_resume_cancel(h):
    _, headers = await h.org()
    campaign = await _create(h, headers, max_concurrent_calls=2)
    cid = campaign["id"]
    status, body = await _action(h, headers, cid, "start")
    assert status == 409 and body["error"]["code"] == "no_contacts"
    await _csv(h, headers, cid, "phone\n" + "".join(f"+1415555{i:04d}\n" for i in range(6)))
    assert (await _action(h, headers, cid, "pause"))[0] == 409  # not running yet
    status, body = await _action(h, headers, cid, "start")
    assert status == 200 and body["status"] == "running" and body["started_at"]
    assert (await _action(h, headers, cid, "start"))[1]["error"]["code"] == "invalid_state"

    assert await _run(h, cid) == ["worked", "worked", "full"]  # the cap: 2 live calls
    first = _dialled(h)[0]
    status, body = await _action(h, headers, cid, "pause")
    assert status == 200 and body["status"] == "paused" and body["in_progress"] == 2
    await _hangup(h, first, await _ccid(h, first["command_id"]), "normal_clearing")
    assert await _run(h, cid) == ["idle"] and len(_dialled(h)) == 2  # paused: no new dials
    assert (await _get(h, headers, cid))["completed_calls"] == 1

    assert (await _action(h, headers, cid, "resume"))[1]["status"] == "running"
    assert await _run(h, cid) == ["worked", "full"] and len(_dialled(h)) == 3
    status, body = await _action(h, headers, cid, "cancel")
    assert status == 200 and body["status"] == "cancelled"
    assert (body["cancelled"], body["in_progress"], body["pending"]) == (3, 2, 0)
    assert (await _action(h, headers, cid, "resume"))[0] == 409
    assert (await _csv(h, headers, cid, "+14155559999\n"))[0] == 409
    # Live calls finish after a cancel; a contact whose call would be retried ends cancelled.
    second, third = _dialled(h)[1:]
    await _hangup(h, second, await _ccid(h, second["command_id"]), "user_busy")
    await _hangup(h, third, await _ccid(h, third["command_id"]), "normal_clearing")
    final = await _get(h, headers, cid)
    assert (final["completed_calls"], final["failed"], final["cancelled"], final["in_progress"]) == (2, 0, 4, 0)
    assert final["total_contacts"] == 6 and final["calls_placed"] == 3


@sqlite_only
async def test_calling_window_in_each_contacts_time_zone(h):
    _, headers = await h.org()
    campaign = await _create(h, headers, window={"start": "09:00", "end": "17:00",
                                                 "days": ["mon", "tue", "wed", "thu", "fri"], "timezone": "UTC"})
    cid = campaign["id"]
    csv_text = ("phone,timezone\n"
                "+442071838750,\n"              # London: 15:00, open
                "+81312345678,\n"               # Tokyo: 00:00, closed until 09:00 JST
                "+14155550101,America/New_York\n"  # explicit zone: 10:00, open
                "+14155550102,\n"               # +1 without a zone: must be open from New York to LA
                "+37912345678,\n")              # no table entry: the window's own zone (UTC), open
    await _csv(h, headers, cid, csv_text)
    await _action(h, headers, cid, "start")
    today = datetime.now(UTC).date() + timedelta(days=1)
    day = today + timedelta(days=(2 - today.weekday()) % 7)  # the next Wednesday
    wednesday = datetime.combine(day, time(15, 0), UTC)
    h.cp.campaigns.dialer.clock = lambda: wednesday
    await _run(h, cid)
    assert sorted(d["to"] for d in _dialled(h)) == ["+14155550101", "+37912345678", "+442071838750"]
    contacts = await _contacts(h, cid)
    tokyo_opens = datetime.combine(day + timedelta(days=1), time(0, 0), UTC)  # 09:00 JST (no DST)
    la_opens = datetime.combine(day, time(9, 0), ZoneInfo("America/Los_Angeles")).astimezone(UTC)
    assert contacts["+81312345678"].status == "outside_window"
    assert contacts["+81312345678"].next_attempt_at == tokyo_opens
    assert contacts["+14155550102"].next_attempt_at == la_opens
    assert (await _get(h, headers, cid))["outside_window"] == 2

    h.cp.campaigns.dialer.clock = lambda: la_opens + timedelta(minutes=30)
    await _run(h, cid)
    assert _dialled(h)[-1]["to"] == "+14155550102" and len(_dialled(h)) == 4
    h.cp.campaigns.dialer.clock = lambda: tokyo_opens + timedelta(days=2, hours=-0.5)  # Sat 08:30 in Tokyo
    await _run(h, cid)
    tokyo = (await _contacts(h, cid))["+81312345678"]
    assert len(_dialled(h)) == 4 and tokyo.next_attempt_at == tokyo_opens + timedelta(days=4)  # Monday


async def test_dnc_is_checked_at_upload_and_again_at_claim_time(h):
    org, headers = await h.org()
    repo = await h.cp.repository()
    await repo.add_dnc(org.id, "+14155550101")
    campaign = await _create(h, headers)
    cid = campaign["id"]
    _, report = await _csv(h, headers, cid, "phone\n+14155550101\n+14155550102\n+14155550103\n")
    assert report["accepted"] == 3 and report["dnc_skipped"] == 1
    await repo.add_dnc(org.id, "+14155550102")  # listed after the upload
    await _action(h, headers, cid, "start")
    await _run(h, cid)
    assert [d["to"] for d in _dialled(h)] == ["+14155550103"]
    contacts = await _contacts(h, cid)
    assert contacts["+14155550102"].status == "dnc_skipped" and contacts["+14155550101"].status == "dnc_skipped"
    assert (await _get(h, headers, cid))["dnc_skipped"] == 2


@sqlite_only
async def test_caller_id_rotation_skips_numbers_at_their_cap(h):
    _, headers = await h.org()
    pool = ["+14155550100", "+14155550200", "+14155550300"]
    campaign = await _create(h, headers, caller_numbers=pool, max_calls_per_number=1, max_concurrent_calls=10)
    cid = campaign["id"]
    await _csv(h, headers, cid, "phone\n" + "".join(f"+1212555{i:04d}\n" for i in range(5)))
    await _action(h, headers, cid, "start")
    assert await _run(h, cid) == ["worked", "worked", "worked", "full"]
    assert [d["from_"] for d in _dialled(h)] == pool
    assert (await _get(h, headers, cid))["pending"] == 2  # the 4th claim went back to the queue
    second = _dialled(h)[1]
    await _hangup(h, second, await _ccid(h, second["command_id"]), "normal_clearing")
    assert await _run(h, cid) == ["worked", "full"]
    assert _dialled(h)[-1]["from_"] == "+14155550200"  # the one number with room again


async def test_retries_with_backoff_then_one_terminal_state(h):
    _, headers = await h.org()
    campaign = await _create(h, headers, retry={"on": ["busy", "no_answer"], "max_attempts": 2, "backoff_s": 60,
                                                "backoff_multiplier": 2})
    cid = campaign["id"]
    await _csv(h, headers, cid, "phone\n+14155550101\n+14155550102\n")
    await _action(h, headers, cid, "start")
    now = datetime.now(UTC)
    h.cp.campaigns.dialer.clock = lambda: now
    await _run(h, cid)
    busy, failing = _dialled(h)
    contacts = await _contacts(h, cid)
    assert busy["command_id"] == str(call_id_for(contacts[busy["to"]].id, 1))
    assert busy["answering_machine_detection"] == "detect" and busy["timeout_secs"] == 30
    await _hangup(h, busy, await _ccid(h, busy["command_id"]), "user_busy")
    await _hangup(h, failing, await _ccid(h, failing["command_id"]), "destination_out_of_order")
    contacts = await _contacts(h, cid)
    retry = contacts[busy["to"]]
    assert (retry.status, retry.outcome, retry.attempts) == ("retry_scheduled", "busy", 1)
    assert abs((retry.next_attempt_at - now).total_seconds() - 60) < 5
    assert (contacts[failing["to"]].status, contacts[failing["to"]].outcome) == ("failed", "failed")
    assert (await _get(h, headers, cid))["retry_scheduled"] == 1

    assert await _run(h, cid) == ["idle"] and len(_dialled(h)) == 2  # not before the backoff
    h.cp.campaigns.dialer.clock = lambda: now + timedelta(seconds=61)
    await _run(h, cid)
    again = _dialled(h)[2]
    assert again["to"] == busy["to"] and again["command_id"] == str(call_id_for(retry.id, 2))
    await _hangup(h, again, await _ccid(h, again["command_id"]), "timeout")
    final = (await _contacts(h, cid))[busy["to"]]
    assert (final.status, final.outcome, final.attempts) == ("failed", "no_answer", 2)
    await _run(h, cid)
    body = await _get(h, headers, cid)
    assert body["status"] == "completed" and body["failed"] == 2 and body["calls_placed"] == 3
    # A webhook delivered again changes nothing.
    await _hangup(h, again, await _ccid(h, again["command_id"]), "timeout")
    assert (await _contacts(h, cid))[busy["to"]] == final


@sqlite_only
async def test_outcome_success_cost_and_turn_latency(h):
    _, headers = await h.org()
    rates = {"currency": "EUR", "voice_per_min": "0.01", "streaming_per_min": "0", "stt_per_min": "0.02",
             "tts_per_min": "0", "llm_per_1k_tokens": "0.5"}
    campaign = await _create(h, headers, cost_rates=rates, success_outcomes=["resolved"])
    cid = campaign["id"]
    await _csv(h, headers, cid, "phone,name,plan\n+14155550101,Ann,gold\n+14155550102,Bo,\n")
    await _action(h, headers, cid, "start")
    await _run(h, cid)
    first, second = _dialled(h)
    repo = await h.cp.repository()
    call = await repo.get_call_unscoped(uuid.UUID(first["command_id"]))
    assert call.agent_config["variables"] == {"name": "Ann", "plan": "gold"} and call.campaign_id
    for dial, outcome in ((first, {"outcome": "resolved", "usage": {"total_tokens": 2000}}),
                          (second, {"outcome": "not_interested"})):
        ccid = await _ccid(h, dial["command_id"])
        state = encoded_state(client_state_for(uuid.UUID(dial["command_id"])))
        await h.webhook("call.answered", {"call_control_id": ccid, "client_state": state},
                        occurred_at="2026-01-01T12:00:00Z")
        await h.cp.recorder.record_turn(ccid, 0, caller_text="hi", agent_text="hello",
                                        latency={"turn_latency_ms": 300 if dial is first else 500})
        usage = {"llm_prompt_tokens": 1500, "llm_completion_tokens": 500, "stt_seconds": 30.0,
                 "tts_characters": 400, "tts_seconds": 60.0} if dial is first else None
        await h.cp.recorder.finish(ccid, summary="s", outcome=outcome, usage=usage)
        await h.webhook("call.hangup", {"call_control_id": ccid, "client_state": state,
                                        "hangup_cause": "normal_clearing"}, occurred_at="2026-01-01T12:01:30Z")
        await h.settle()
    body = await _get(h, headers, cid)
    assert (body["completed_calls"], body["successful_calls"]) == (2, 1)
    assert body["average_turn_latency_ms"] == 400.0
    # The calls' real figures at the campaign's rates: 1.5 answered minutes x 0.01 each; for the
    # first, 0.5 STT minutes x 0.02 and the 2000 tokens its agent reported x 0.5 / 1000 (the
    # outcome's own "usage" claim is not a figure anyone measured).
    assert Decimal(body["cost"]["amount"]) == Decimal("0.03") + Decimal("0.01") + Decimal("1")
    assert body["cost"]["currency"] == "EUR"
    call = await repo.get_call_unscoped(uuid.UUID(first["command_id"]))
    assert call.outcome["llm_tokens"] == 2000


@sqlite_only
async def test_an_erased_contact_is_never_dialled(h):
    _, headers = await h.org()
    campaign = await _create(h, headers)
    cid = campaign["id"]
    await _csv(h, headers, cid, "phone\n+14155550101\n+14155550102\n")
    assert (await h.client.delete("/api/contacts/%2B14155550101", headers=headers)).status == 200
    await _action(h, headers, cid, "start")
    await _run(h, cid)
    assert [d["to"] for d in _dialled(h)] == ["+14155550102"]
    assert (await _get(h, headers, cid))["erased"] == 1


# -- fuzzing ------------------------------------------------------------------------------------------

values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                      max_leaves=8)
create_bodies = st.fixed_dictionaries({}, optional={
    "name": values | st.just("x"), "agent_config": st.just(AGENT) | values,
    "caller_numbers": st.just(["+14155550100"]) | values, "calls_per_minute": values | st.integers(-5, 70_000),
    "window": values | st.fixed_dictionaries({}, optional={"start": st.sampled_from(["09:00", "24:00", "25:61", "x"]),
                                                           "timezone": st.sampled_from(["UTC", "Nope/No", ""]),
                                                           "days": values}),
    "retry": values, "voicemail": values, "cost_rates": values, "extra": values})
csv_bodies = st.lists(st.lists(st.text(max_size=15) | st.sampled_from(["+14155550101", "phone", '"', "\n"]),
                               max_size=4), max_size=6).map(lambda rows: "\n".join(",".join(r) for r in rows))


@pytest.mark.slow
@sqlite_only
async def test_fuzzing_the_campaign_api_finds_no_5xx(h):
    # Hypothesis runs its examples (and shrinks a failure) in a thread of its own; each example's
    # requests are sent on the test's loop, where the app is.
    loop = asyncio.get_running_loop()
    _, headers = await h.org()
    campaign = await _create(h, headers)

    @hypothesis_settings(max_examples=150, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow])
    @given(create=create_bodies, upload=csv_bodies, action=st.sampled_from(["start", "pause", "resume", "cancel"]),
           content_type=st.sampled_from(["text/csv", "application/json", "text/plain"]))
    def check(create: Any, upload: str, action: str, content_type: str) -> None:
        async def go() -> list[int]:
            statuses = [(await h.client.post("/api/campaigns", json=create, headers=headers)).status]
            statuses.append((await h.client.post(
                f"/api/campaigns/{campaign['id']}/contacts", data=upload.encode(),
                headers={**headers, "Content-Type": content_type})).status)
            statuses.append((await h.client.post(f"/api/campaigns/{campaign['id']}/{action}",
                                                 headers=headers)).status)
            return statuses

        assert all(s < 500 for s in asyncio.run_coroutine_threadsafe(go(), loop).result())

    await asyncio.to_thread(check)


async def test_stopping_a_dialer_hands_its_waiting_claim_back(tmp_path):
    async with harness(_local(tmp_path, campaigns={"dialer": True, "poll_interval_s": 0.05})) as h:
        _, headers = await h.org()
        campaign = await _create(h, headers, calls_per_minute=1)  # one dial, then a minute's wait
        cid = campaign["id"]
        await _csv(h, headers, cid, "phone\n+14155550101\n+14155550102\n")
        await _action(h, headers, cid, "start")

        async def waiting() -> bool:
            contacts = await _contacts(h, cid)
            return len(_dialled(h)) == 1 and any(c.status == "claimed" for c in contacts.values())

        await eventually(waiting)
        await h.cp.campaigns.stop()
        contacts = await _contacts(h, cid)
        second = next(c for c in contacts.values() if c.attempts == 0)
        assert (second.status, second.claim_token, second.lease_until) == ("pending", None, None)
        assert len(_dialled(h)) == 1


@sqlite_only
async def test_the_dialer_keeps_each_plus_one_number_to_its_own_hours(h):
    """Honolulu is not dialled at 07:30 local because Los Angeles is open, nor Halifax, Puerto
    Rico and St John's after 21:00 local because New York is (fails on the country table)."""
    _, headers = await h.org()
    window = {"start": "09:00", "end": "21:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
              "timezone": "UTC"}
    csv_text = ("phone,timezone\n"
                "+18085550123,\n"                   # Honolulu
                "+18085550124,America/New_York\n"   # an explicit zone wins over the area code
                "+19025550123,\n"                   # Halifax
                "+17875550123,\n"                   # Puerto Rico
                "+17095550123,\n"                   # St John's (or Halifax: Labrador)
                "+12125550123,\n"                   # New York
                "+13105550123,\n")                  # Los Angeles
    january = datetime.now(UTC).year + 1
    day = datetime(january, 1, 1).date()
    day += timedelta(days=(2 - day.weekday()) % 7)  # a Wednesday in January: no DST anywhere

    async def run_at(moment: datetime) -> tuple[set[str], dict[str, Any]]:
        campaign = await _create(h, headers, window=window)
        await _csv(h, headers, campaign["id"], csv_text)
        await _action(h, headers, campaign["id"], "start")
        before = len(_dialled(h))
        h.cp.campaigns.dialer.clock = lambda: moment
        await _run(h, campaign["id"])
        return {d["to"] for d in _dialled(h)[before:]}, await _contacts(h, campaign["id"])

    morning = datetime.combine(day, time(17, 30), UTC)  # 07:30 Honolulu, 09:30 LA, 12:30 NY
    dialled, contacts = await run_at(morning)
    assert "+18085550123" not in dialled
    assert dialled == {"+18085550124", "+19025550123", "+17875550123", "+17095550123", "+12125550123",
                       "+13105550123"}
    assert contacts["+18085550123"].next_attempt_at == datetime.combine(day, time(9), ZoneInfo("Pacific/Honolulu"))

    evening = datetime.combine(day + timedelta(days=1), time(1, 15), UTC)  # 20:15 NY, 21:15 Atlantic, 21:45 NST
    dialled, contacts = await run_at(evening)
    assert dialled == {"+18085550123", "+18085550124", "+12125550123", "+13105550123"}
    thursday = day + timedelta(days=1)
    for number in ("+19025550123", "+17875550123"):
        assert contacts[number].next_attempt_at == datetime.combine(thursday, time(9), ZoneInfo("America/Halifax"))
    # 709 may be on Halifax time: it opens at 09:00 there, when St John's is already at 09:30.
    assert contacts["+17095550123"].next_attempt_at == datetime.combine(thursday, time(13), UTC)
