"""REST API: auth and organisation scoping, the error shape, calls, keys, DNC, rate limits."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pydantic import SecretStr

from control_plane.callstate import call_id_from_client_state
from control_plane.streamauth import verify_token
from control_plane.telnyx.client import TelnyxConnectionError, TelnyxRateLimited
from tests.fixtures.servers import sqlite_only
from tests.fixtures.waiting import eventually

from .conftest import make_settings
from .fakes import PUBLIC_URL, harness, telnyx_error
from .helpers import make_campaign


class DialGate:
    """Holds every dial until ``set()``; ``reached`` is set once a dial is waiting at it."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._open = asyncio.Event()

    def set(self) -> None:
        self._open.set()

    async def wait(self) -> None:
        self.reached.set()
        await self._open.wait()


def hold_dials(h) -> DialGate:
    """Make every dial wait until the returned gate is set (a dial in flight)."""
    gate = DialGate()
    dial = h.telnyx.dial

    async def held_dial(**kwargs):
        await gate.wait()
        return await dial(**kwargs)

    h.telnyx.dial = held_dial
    return gate


async def _count_calls(cp, org) -> int:
    repo = await cp.repository()
    async with repo.connection() as conn:
        row = await conn.fetchrow("SELECT count(*) AS n FROM calls WHERE org_id = $1", org.id)
    return int(row["n"])


# -- auth and scoping ----------------------------------------------------------------------


async def test_requests_without_a_valid_key_are_401_in_the_error_shape(h):
    _, headers = await h.org()
    for bad in (None, "Basic abc", "Bearer ", "Bearer ck_not-a-real-key-at-all", "Bearer sk_other"):
        response = await h.client.get("/api/calls", headers={"Authorization": bad} if bad else {})
        assert response.status == 401
        body = await response.json()
        assert body["error"]["code"] == "unauthorized" and body["error"]["message"]
        assert "Bearer" in response.headers["WWW-Authenticate"]
    assert (await h.client.get("/api/calls", headers=headers)).status == 200


async def test_org_a_gets_404_on_org_b_call_and_cannot_hang_it_up(h):
    _, headers_a = await h.org("A")
    _, headers_b = await h.org("B")
    started = await (await h.start_call(headers_b)).json()
    call_id = started["call_id"]
    for method, path in (("GET", f"/api/calls/{call_id}"), ("POST", f"/api/calls/{call_id}/hangup")):
        response = await h.client.request(method, path, headers=headers_a)
        assert response.status == 404, (method, path)
        assert (await response.json())["error"]["code"] == "not_found"
    assert h.telnyx.named("hangup") == []
    listed = await (await h.client.get("/api/calls", headers=headers_a)).json()
    assert listed["data"] == []
    assert (await h.client.get(f"/api/calls/{call_id}", headers=headers_b)).status == 200


async def test_api_keys_create_list_revoke(h):
    _, headers = await h.org()
    _, other_headers = await h.org("other")
    created = await h.client.post("/api/keys", json={"name": "ci"}, headers=headers)
    assert created.status == 201
    key = await created.json()
    assert key["key"].startswith("ck_") and key["active"] is True and key["key"].startswith(key["prefix"])
    new_headers = {"Authorization": f"Bearer {key['key']}"}
    listed = await (await h.client.get("/api/keys", headers=new_headers)).json()
    assert {k["name"] for k in listed["data"]} == {"test", "ci"}
    assert all("key" not in k for k in listed["data"])
    # Another organisation cannot see or revoke it.
    assert (await h.client.delete(f"/api/keys/{key['id']}", headers=other_headers)).status == 404
    revoked = await h.client.delete(f"/api/keys/{key['id']}", headers=headers)
    assert revoked.status == 200 and (await revoked.json())["active"] is False
    assert (await h.client.get("/api/keys", headers=new_headers)).status == 401
    # The last active key stays.
    remaining = next(k for k in listed["data"] if k["name"] == "test")
    last = await h.client.delete(f"/api/keys/{remaining['id']}", headers=headers)
    assert last.status == 409 and (await last.json())["error"]["code"] == "last_active_key"
    assert (await h.client.get("/api/keys", headers=headers)).status == 200


# -- errors and validation -------------------------------------------------------------------


async def test_malformed_wrong_typed_and_oversized_bodies_write_nothing(settings):
    settings = settings.model_copy(update={"server": settings.server.model_copy(update={"max_body_bytes": 4096})})
    async with harness(settings) as h:
        org, headers = await h.org()
        json_headers = {**headers, "Content-Type": "application/json"}
        cases = [
            (b'{"to": "+14155550123", "from": ', json_headers, 400, "invalid_json"),
            (b"", json_headers, 400, "invalid_json"),
            (b'["not", "an", "object"]', json_headers, 400, "validation_error"),
            (b'{"to": 14155550123, "from": "+14155550100", "agent_config": {"personality": "x", "voice": "v",'
             b' "language": "en"}}', json_headers, 400, "validation_error"),
            (b'{"to": "+14155550123", "from": "+14155550100", "agent_config": {"personality": "x", "voice": "v",'
             b' "language": "en", "max_duration_s": "600"}}', json_headers, 400, "validation_error"),
            (b'{"to": "not a number", "from": "+14155550100", "agent_config": {"personality": "x", "voice": "v",'
             b' "language": "en"}}', json_headers, 400, "validation_error"),
            (b'{"to": "+14155550123", "from": "+14155550100", "agent_config": {"personality": "x", "voice": "v",'
             b' "language": "en"}, "surprise": 1}', json_headers, 400, "validation_error"),
            (b'{"to": "+14155550123"}', {**headers, "Content-Type": "text/plain"}, 415, "unsupported_media_type"),
            (b'{"to": "' + b"1" * 8000 + b'"}', json_headers, 413, "payload_too_large"),
        ]
        for body, request_headers, status, code in cases:
            response = await h.client.post("/api/calls/start", data=body, headers=request_headers)
            assert response.status == status, (body[:60], await response.text())
            error = (await response.json())["error"]
            assert error["code"] == code
        wrong_type = await h.client.post("/api/calls/start", data=cases[3][0], headers=json_headers)
        details = (await wrong_type.json())["error"]["details"]
        assert ["to"] in [d["loc"] for d in details]
        assert "14155550123" not in await wrong_type.text()  # submitted values are not echoed
        assert h.telnyx.commands == []
        assert await _count_calls(h.cp, org) == 0
        oversized_key = await h.client.post("/api/keys", data=b'{"name": "' + b"k" * 8000 + b'"}',
                                            headers=json_headers)
        assert oversized_key.status == 413
        assert len(await (await h.cp.repository()).list_api_keys(org.id)) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_unknown_routes_and_methods_use_the_error_shape(h):
    _, headers = await h.org()
    missing = await h.client.get("/api/nothing-here", headers=headers)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    wrong = await h.client.put("/api/calls/start", headers=headers)
    assert wrong.status == 405 and "Allow" in wrong.headers
    assert (await wrong.json())["error"]["code"] == "method_not_allowed"
    bad_id = await h.client.get("/api/calls/not-a-uuid", headers=headers)
    assert bad_id.status == 404
    cursor = await h.client.get("/api/calls?cursor=%%%", headers=headers)
    assert cursor.status == 400 and (await cursor.json())["error"]["code"] == "invalid_cursor"
    limit = await h.client.get("/api/calls?limit=abc", headers=headers)
    assert limit.status == 400 and (await limit.json())["error"]["details"][0]["loc"] == ["limit"]


# -- calls -------------------------------------------------------------------------------------


async def test_start_call_writes_the_row_then_dials_with_streaming(settings):
    settings = settings.model_copy(update={"stream_auth_token": SecretStr("s3cret")})
    async with harness(settings) as h:
        _, headers = await h.org()
        response = await h.start_call(headers, to="+1 (415) 555-0123",
                                      agent_config={"personality": "sales", "language": "en-US",
                                                    "max_duration_s": 600, "variables": {"x": "1"}})
        assert response.status == 201, await response.text()
        body = await response.json()
        assert body["success"] is True and body["status"] == "initiated" and body["call_control_id"]
        (dial,) = h.telnyx.named("dial")
        assert dial["to"] == "+14155550123" and dial["from_"] == "+14155550100"
        assert dial["connection_id"] == "1234567890"
        base, _, query = dial["stream_url"].partition("?token=")
        assert base == "wss://agent.example.com/media-stream"
        # The stream's own credential, bound to this call; the global token keeps riding in the header.
        assert str(verify_token(h.cp.keys.hasher, query)) == body["call_id"]
        assert (dial["stream_track"], dial["stream_bidirectional_mode"], dial["stream_bidirectional_codec"]) == (
            "inbound_track", "rtp", "PCMU")
        assert dial["stream_auth_token"] == "s3cret"
        assert dial["webhook_url"] == f"{PUBLIC_URL}/webhook/telnyx"
        assert dial["command_id"] == body["call_id"] and dial["time_limit_secs"] == 600
        assert str(call_id_from_client_state(dial["client_state"].encode())) == body["call_id"]
        detail = await (await h.client.get(f"/api/calls/{body['call_id']}", headers=headers)).json()
        assert detail["to"] == "+14155550123" and detail["call_control_id"] == body["call_control_id"]
        assert [s["status"] for s in detail["status_history"]] == ["queued", "initiated"]
        # Only the overrides given are stored; the pipeline applies them over settings.agent.
        assert detail["agent_config"] == {"personality": "sales", "language": "en-US", "max_duration_s": 600,
                                          "variables": {"x": "1"}}
        context = await h.cp.recorder.lookup(body["call_control_id"])
        assert context.agent.personality == "sales" and context.agent.tools == settings.agent.tools


async def test_dnc_blocks_dialling(h):
    org, headers = await h.org()
    _, other = await h.org("other")
    added = await h.client.post("/api/dnc", json={"phone": "+14155550123", "reason": "asked"}, headers=headers)
    assert added.status == 201 and (await added.json())["added"] is True
    again = await h.client.post("/api/dnc", json={"phone": "+1 415 555 0123"}, headers=headers)
    assert again.status == 200 and (await again.json())["added"] is False
    blocked = await h.start_call(headers, to="+14155550123")
    assert blocked.status == 409 and (await blocked.json())["error"]["code"] == "dnc_blocked"
    assert h.telnyx.named("dial") == [] and await _count_calls(h.cp, org) == 0
    check = await (await h.client.get("/api/dnc/%2B14155550123", headers=headers)).json()
    assert check["blocked"] is True and check["reason"] == "asked"
    # Per organisation: another organisation may call the number.
    assert (await h.start_call(other, to="+14155550123")).status == 201
    removed = await h.client.delete("/api/dnc/%2B14155550123", headers=headers)
    assert removed.status == 200
    assert (await h.client.delete("/api/dnc/%2B14155550123", headers=headers)).status == 404
    assert (await (await h.client.get("/api/dnc/%2B14155550123", headers=headers)).json())["blocked"] is False
    assert (await h.start_call(headers, to="+14155550123")).status == 201
    assert (await h.client.get("/api/dnc/12345", headers=headers)).status == 400


@sqlite_only
async def test_dnc_csv_import(h):
    _, headers = await h.org()
    csv_body = ("name,phone,reason\nAnn,+14155550001,asked\nBob,not-a-number,\n\n"
                "Cy,+1 415 555 0002,\nDup,+14155550001,\n")
    response = await h.client.post("/api/dnc/import", data=csv_body.encode(),
                                   headers={**headers, "Content-Type": "text/csv"})
    assert response.status == 200, await response.text()
    result = await response.json()
    assert (result["rows"], result["valid"], result["added"], result["invalid"]) == (4, 3, 2, 1)
    assert result["invalid_rows"] == [3]
    assert (await (await h.client.get("/api/dnc/%2B14155550002", headers=headers)).json())["blocked"]
    assert (await h.start_call(headers, to="+14155550001")).status == 409
    plain = await h.client.post("/api/dnc/import", data=b"+14155550003\n+14155550001\n",
                                headers={**headers, "Content-Type": "text/csv"})
    assert (await plain.json())["added"] == 1 and (await plain.json())["already_listed"] == 1
    wrong_type = await h.client.post("/api/dnc/import", json={"phone": "+14155550009"}, headers=headers)
    assert wrong_type.status == 415
    binary = await h.client.post("/api/dnc/import", data=b"\xff\xfe\x00bad",
                                 headers={**headers, "Content-Type": "text/csv"})
    assert binary.status == 400


async def test_dial_failures_mark_the_row_failed_and_return_telnyx_error(h):
    _, headers = await h.org()
    h.telnyx.fail_dial = telnyx_error(422, "10015", "Invalid 'to' number")
    refused = await h.start_call(headers)
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert error["code"] == "telnyx_error" and error["details"]["telnyx_code"] == "10015"
    call = await (await h.client.get(f"/api/calls/{error['details']['call_id']}", headers=headers)).json()
    assert call["status"] == "failed" and call["error"]["telnyx_code"] == "10015"

    h.telnyx.fail_dial = TelnyxConnectionError("no response")
    unreachable = await h.start_call(headers)
    assert unreachable.status == 502 and (await unreachable.json())["error"]["code"] == "telnyx_unreachable"

    h.telnyx.fail_dial = telnyx_error(500, "", "upstream")
    assert (await h.start_call(headers)).status == 502

    h.telnyx.fail_dial = TelnyxRateLimited(429, [{"code": "10011"}], 7.0)
    limited = await h.start_call(headers)
    assert limited.status == 503 and limited.headers["Retry-After"] == "7"
    failed = await (await h.client.get("/api/calls?status=failed", headers=headers)).json()
    assert len(failed["data"]) == 4


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_unknown_campaign_is_422_and_campaign_filter_works(h):
    org, headers = await h.org()
    unknown = await h.start_call(headers, campaign_id=str(uuid.uuid4()))
    assert unknown.status == 422 and (await unknown.json())["error"]["code"] == "unknown_campaign"
    campaign = await make_campaign(await h.cp.repository(), org.id, "spring")
    assert (await h.start_call(headers, campaign_id=str(campaign.id))).status == 201
    assert (await h.start_call(headers)).status == 201
    listed = await (await h.client.get(f"/api/calls?campaign_id={campaign.id}", headers=headers)).json()
    assert len(listed["data"]) == 1 and listed["data"][0]["campaign_id"] == str(campaign.id)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_list_calls_paginates_with_a_cursor(h):
    _, headers = await h.org()
    ids = [(await (await h.start_call(headers)).json())["call_id"] for _ in range(5)]
    seen, url = [], "/api/calls?limit=2"
    while True:
        page = await (await h.client.get(url, headers=headers)).json()
        seen += [c["id"] for c in page["data"]]
        if not page["next_cursor"]:
            break
        url = f"/api/calls?limit=2&cursor={page['next_cursor']}"
    assert seen == list(reversed(ids))
    since = await (await h.client.get("/api/calls?since=2999-01-01T00:00:00Z", headers=headers)).json()
    assert since["data"] == []
    assert (await h.client.get("/api/calls?limit=5000", headers=headers)).status == 400
    assert (await h.client.get("/api/calls?status=bogus", headers=headers)).status == 400


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_hangup_sends_the_command_once_per_call(h):
    _, headers = await h.org()
    started = await (await h.start_call(headers)).json()
    first = await h.client.post(f"/api/calls/{started['call_id']}/hangup", headers=headers)
    assert first.status == 200
    assert await first.json() == {"success": True, "status": "initiated", "hangup_requested": True}
    await h.client.post(f"/api/calls/{started['call_id']}/hangup", headers=headers)
    hangups = h.telnyx.named("hangup")
    assert [c["call_control_id"] for c in hangups] == [started["call_control_id"]] * 2
    assert hangups[0]["command_id"] == hangups[1]["command_id"]  # Telnyx drops the repeat
    # A finished call is not hung up again.
    await h.webhook("call.hangup", {"call_control_id": started["call_control_id"],
                                    "hangup_cause": "normal_clearing", "hangup_source": "caller"})
    await h.settle()
    done = await h.client.post(f"/api/calls/{started['call_id']}/hangup", headers=headers)
    assert await done.json() == {"success": True, "status": "completed", "hangup_requested": False}
    assert len(h.telnyx.named("hangup")) == 2


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_hangup_while_the_dial_is_in_flight_is_sent_when_it_returns(h):
    _, headers = await h.org()
    gate = hold_dials(h)
    start = asyncio.ensure_future(h.start_call(headers))
    repo = await h.cp.repository()
    org_id = (await repo.find_api_key(headers["Authorization"][7:19])).org_id

    async def listed() -> Any:
        return (await repo.list_calls(org_id)).calls

    (queued,) = await eventually(listed, what="the queued call")
    assert queued.status == "queued"
    response = await h.client.post(f"/api/calls/{queued.id}/hangup", headers=headers)
    assert (await response.json())["status"] == "queued" and h.telnyx.named("hangup") == []
    gate.set()
    started = await (await start).json()
    assert [c["call_control_id"] for c in h.telnyx.named("hangup")] == [started["call_control_id"]]


async def test_not_configured_is_503_and_writes_nothing(tmp_path):
    async with harness(make_settings(tmp_path, telnyx_connection_id=None)) as h:
        org, headers = await h.org()
        response = await h.start_call(headers)
        assert response.status == 503 and (await response.json())["error"]["code"] == "not_configured"
        assert await _count_calls(h.cp, org) == 0
    async with harness(make_settings(tmp_path, server={"public_url": None})) as h:
        _, headers = await h.org()
        assert (await h.start_call(headers)).status == 503


# -- rate limits ---------------------------------------------------------------------------------


async def test_rate_limit_in_process_returns_429_with_retry_after(tmp_path):
    async with harness(make_settings(tmp_path, api={"call_starts_per_minute": 3})) as h:
        _, headers = await h.org()
        _, other = await h.org("other")
        assert [(await h.start_call(headers)).status for _ in range(3)] == [201] * 3
        limited = await h.start_call(headers)
        assert limited.status == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert (await limited.json())["error"]["code"] == "rate_limited"
        assert (await h.start_call(other)).status == 201  # per organisation
        assert len(h.telnyx.named("dial")) == 4


async def test_rate_limit_holds_across_two_app_instances_sharing_redis(tmp_path, pg_schema, redis_prefix):
    settings = make_settings(tmp_path, backend="postgres", pg_schema=pg_schema, redis_prefix=redis_prefix,
                             api={"call_starts_per_minute": 5})
    async with harness(settings) as one, harness(settings) as two:
        _, headers = await one.org()
        statuses = []
        for i in range(8):
            statuses.append((await (one if i % 2 else two).start_call(headers)).status)
        assert statuses.count(201) == 5 and statuses[5:] == [429, 429, 429]
        assert len(one.telnyx.named("dial")) + len(two.telnyx.named("dial")) == 5


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/openapi.json"])
async def test_public_endpoints_need_no_key(path, h):
    assert (await h.client.get(path)).status == 200


async def test_agent_config_is_the_pipelines_model(tmp_path):
    personalities = tmp_path / "personalities.toml"
    personalities.write_text('[personalities.receptionist]\nsystem_prompt = "You answer the phone."\n')
    async with harness(make_settings(tmp_path, personalities_file=personalities)) as h:
        org, headers = await h.org()
        cases = [
            ({"personality": "pirate"}, 422, "invalid_agent_config"),
            ({"personality": "friendly", "tools": ["launch_rockets"]}, 422, "invalid_agent_config"),
            ({"personality": "friendly", "mood": "grumpy"}, 400, "validation_error"),
            ({"personality": ""}, 400, "validation_error"),
        ]
        for agent_config, status, code in cases:
            response = await h.start_call(headers, agent_config=agent_config)
            assert response.status == status, agent_config
            assert (await response.json())["error"]["code"] == code
        assert h.telnyx.named("dial") == [] and await _count_calls(h.cp, org) == 0
        ok = await h.start_call(headers, agent_config={"personality": "receptionist"})
        assert ok.status == 201
        (dial,) = h.telnyx.named("dial")
        assert dial["time_limit_secs"] == h.cp.settings.agent.max_duration_s  # the default agent's limit


async def test_the_minimal_start_body_runs_the_default_agent(h):
    _, headers = await h.org()
    response = await h.client.post("/api/calls/start", json={"to": "+14155550123", "from": "+14155550100"},
                                   headers=headers)
    assert response.status == 201, await response.text()
    call_id = (await response.json())["call_id"]
    (dial,) = h.telnyx.named("dial")
    assert dial["to"] == "+14155550123"
    detail = await (await h.client.get(f"/api/calls/{call_id}", headers=headers)).json()
    assert detail["agent_config"] == {}  # nothing given, nothing stored: the server's agent applies
    only_voice = await h.start_call(headers, to="+14155550124", agent_config={"language": "en-GB"})
    assert only_voice.status == 201
    detail = await (await h.client.get(f"/api/calls/{(await only_voice.json())['call_id']}", headers=headers)).json()
    assert detail["agent_config"] == {"language": "en-GB"}


# -- Idempotency-Key -----------------------------------------------------------------------


async def test_a_retried_start_with_the_same_idempotency_key_dials_once(h):
    org, headers = await h.org()
    keyed = {**headers, "Idempotency-Key": "order-4711-call"}
    first = await h.start_call(keyed)
    assert first.status == 201, await first.text()
    again = await h.start_call(keyed)
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert len(h.telnyx.named("dial")) == 1 and await _count_calls(h.cp, org) == 1
    # The same key with another body is a client bug, not a retry: refused, nothing dialed.
    other = await h.start_call(keyed, to="+14155550199")
    assert other.status == 422 and (await other.json())["error"]["code"] == "idempotency_key_reused"
    # Without the key, or with another, a start is a new call.
    assert (await h.start_call(headers)).status == 201
    assert (await h.start_call({**headers, "Idempotency-Key": "order-4712-call"})).status == 201
    assert len(h.telnyx.named("dial")) == 3 and await _count_calls(h.cp, org) == 3


async def test_idempotency_keys_belong_to_one_organisation(h):
    _, headers_a = await h.org("A")
    org_b, headers_b = await h.org("B")
    a = await h.start_call({**headers_a, "Idempotency-Key": "same"})
    b = await h.start_call({**headers_b, "Idempotency-Key": "same"})
    assert a.status == b.status == 201
    assert (await a.json())["call_id"] != (await b.json())["call_id"]
    assert len(h.telnyx.named("dial")) == 2 and await _count_calls(h.cp, org_b) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_retry_while_the_first_start_is_dialing_is_409_then_replays(h):
    _, headers = await h.org()
    keyed = {**headers, "Idempotency-Key": "k-1"}
    gate = hold_dials(h)
    first = asyncio.ensure_future(h.start_call(keyed))
    await gate.reached.wait()  # the first start is dialing
    during = await h.start_call(keyed)
    assert during.status == 409 and during.headers["Retry-After"] == "1"
    assert (await during.json())["error"]["code"] == "idempotency_key_in_flight"
    gate.set()
    placed = await (await first).json()
    after = await h.start_call(keyed)
    assert after.status == 200 and (await after.json())["call_id"] == placed["call_id"]
    assert len(h.telnyx.named("dial")) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_concurrent_starts_with_one_key_make_one_call(h):
    org, headers = await h.org()
    keyed = {**headers, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(*(h.start_call(keyed) for _ in range(8)))
    statuses = sorted(r.status for r in responses)
    assert statuses.count(201) == 1 and set(statuses) <= {200, 201, 409}
    assert len(h.telnyx.named("dial")) == 1 and await _count_calls(h.cp, org) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "é"])
async def test_a_malformed_idempotency_key_is_400_and_dials_nothing(key, h):
    org, headers = await h.org()
    response = await h.start_call({**headers, "Idempotency-Key": key})
    assert response.status == 400 and (await response.json())["error"]["code"] == "validation_error"
    assert h.telnyx.named("dial") == [] and await _count_calls(h.cp, org) == 0


# -- starts a crashed process left queued ----------------------------------------------------


async def test_api_starts_left_queued_by_a_crash_are_failed_once_no_dial_can_be_in_doubt(settings):
    from datetime import timedelta

    from control_plane.store import Call, StatusChange, utcnow

    async with harness(settings) as h:
        org, headers = await h.org()
        repo = await h.cp.repository()
        now = utcnow()

        async def queued(age_s: float, reason: str = "api", call_control_id: str | None = None) -> Call:
            at = now - timedelta(seconds=age_s)
            return await repo.create_call(Call(
                id=uuid.uuid4(), org_id=org.id, direction="outbound", to_number="+14155550123",
                from_number="+14155550100", status="queued", call_control_id=call_control_id,
                status_history=(StatusChange(status="queued", at=at, reason=reason),),
                created_at=at, updated_at=at))

        crashed = await queued(600)
        recent = await queued(60)  # its dial may still be in flight, or its webhooks on the way
        campaign = await queued(600, reason="campaign:attempt 1")  # the campaign dialer's to settle
        proved = await queued(600, call_control_id="v3:proved-by-a-webhook")
        await h.cp.dial_sweeper.sweep(now)  # (the background sweep may have been first: same result)
        detail = await (await h.client.get(f"/api/calls/{crashed.id}", headers=headers)).json()
        assert detail["status"] == "failed" and detail["error"]["code"] == "dial_unconfirmed"
        for untouched in (recent, campaign, proved):
            assert (await repo.get_call(org.id, untouched.id)).status == "queued"
        assert await h.cp.dial_sweeper.sweep(now) == 0  # once
        assert h.telnyx.named("dial") == []  # never dialled again
