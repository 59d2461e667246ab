"""The organisation's inbound numbers and settings, over REST, scoped to the organisation; and
inbound calls to a number nobody registered are rejected through the real client and emulator."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from control_plane.app import CONTROL_PLANE_KEY

from .conftest import make_settings
from .fakes import harness
from .helpers import with_tenant_networks
from .test_emulator_e2e import _eventually, _system


async def test_numbers_are_added_listed_and_removed_per_organisation(h):
    _, headers_a = await h.org("A")
    _, headers_b = await h.org("B")
    added = await h.client.post("/api/numbers", json={"number": "+13125550100",
                                                      "agent_config": {"personality": "professional"}},
                                headers=headers_a)
    assert added.status == 201, await added.text()
    body = await added.json()
    assert body["number"] == "+13125550100" and body["agent_config"] == {"personality": "professional"}
    minimal = await h.client.post("/api/numbers", json={"number": "+13125550101"}, headers=headers_a)
    assert minimal.status == 201 and (await minimal.json())["agent_config"] == {}

    # The same number for another organisation: refused without saying whose it is.
    taken = await h.client.post("/api/numbers", json={"number": "+13125550100"}, headers=headers_b)
    assert taken.status == 409
    error = (await taken.json())["error"]
    assert error["code"] == "number_taken" and "A" not in error["message"]

    listed_a = await (await h.client.get("/api/numbers", headers=headers_a)).json()
    assert [n["number"] for n in listed_a["data"]] == ["+13125550100", "+13125550101"]
    assert (await (await h.client.get("/api/numbers", headers=headers_b)).json())["data"] == []

    path = f"/api/numbers/{quote('+13125550100')}"
    assert (await h.client.delete(path, headers=headers_b)).status == 404  # not B's to remove
    removed = await h.client.delete(path, headers=headers_a)
    assert removed.status == 200 and (await removed.json()) == {"number": "+13125550100", "removed": True}
    assert (await h.client.delete(path, headers=headers_a)).status == 404


async def test_bad_number_bodies_are_clear_errors(h):
    org, headers = await h.org()
    cases = [
        ({"number": "12"}, 400, "validation_error"),
        ({"number": "+13125550100", "agent_config": {"personality": "pirate"}}, 422, "invalid_agent_config"),
        ({"number": "+13125550100", "agent_config": {"mood": "grumpy"}}, 400, "validation_error"),
        ({}, 400, "validation_error"),
    ]
    for body, status, code in cases:
        response = await h.client.post("/api/numbers", json=body, headers=headers)
        assert response.status == status, body
        assert (await response.json())["error"]["code"] == code
    repo = await h.cp.repository()
    assert await repo.list_phone_numbers(org.id) == []


async def test_organisation_settings_over_rest(h):
    h.cp.settings = with_tenant_networks(h.cp.settings, "10.0.0.0/8")
    org, headers = await h.org("A")
    _, headers_b = await h.org("B")
    got = await (await h.client.get("/api/organisation", headers=headers)).json()
    assert got["id"] == str(org.id) and got["name"] == "A" and got["settings"] == {}
    changed = await h.client.patch("/api/organisation/settings", json={"record_calls": True}, headers=headers)
    assert changed.status == 200 and (await changed.json())["settings"] == {"record_calls": True}
    assert (await (await h.client.get("/api/organisation", headers=headers_b)).json())["settings"] == {}
    wrong = await h.client.patch("/api/organisation/settings", json={"record_calls": "yes"}, headers=headers)
    assert wrong.status == 400
    unknown = await h.client.patch("/api/organisation/settings", json={"paint": "red"}, headers=headers)
    assert unknown.status == 400
    reset = await h.client.patch("/api/organisation/settings", json={"record_calls": None}, headers=headers)
    assert (await reset.json())["settings"] == {}
    allowed = await h.client.patch("/api/organisation/settings",
                                   json={"tool_allowed_destinations": ["crm.internal", "10.1.0.0/16"]},
                                   headers=headers)
    assert (await allowed.json())["settings"] == {"tool_allowed_destinations": ["crm.internal", "10.1.0.0/16"]}
    hostile = await h.client.patch("/api/organisation/settings",
                                   json={"tool_allowed_destinations": ["ok.example", "<script>"]}, headers=headers)
    assert hostile.status == 400 and "<script>" not in await hostile.text()
    for wide in (["10.1.0.0/16", "169.254.169.254/32"], ["0.0.0.0/0"], ["127.0.0.0/8"], ["fd00:ec2::254/128"]):
        refused = await h.client.patch("/api/organisation/settings", json={"tool_allowed_destinations": wide},
                                       headers=headers)
        message = (await refused.json())["error"]["message"]
        assert refused.status == 400 and "tools.tenant_allowable_networks" in message, wide
    assert (await (await h.client.get("/api/organisation", headers=headers)).json())["settings"] == {
        "tool_allowed_destinations": ["crm.internal", "10.1.0.0/16"]}  # the refused lists were not stored


async def test_inbound_calls_reach_a_number_registered_over_rest_and_others_are_rejected(tmp_path):
    # The emulator's clock runs 100 times fast (time_scale 0.01): Telnyx's 30 s for an incoming call
    # to be answered or rejected would be 0.3 s, less than a loaded machine may take to reject it.
    # The test is about who answers, so the caller waits as long as the test does.
    async with _system(lambda **kw: make_settings(tmp_path, **kw), incoming_timeout_s=3000.0) as (
            emulator, client, headers, _org):
        registered = await client.post("/api/numbers", json={"number": "+13125550100"}, headers=headers)
        assert registered.status == 201
        webhook_url = f"http://127.0.0.1:{client.server.port}/webhook/telnyx"
        known = emulator.incoming_call(from_="+14155550123", to="+13125550100", connection_id="1234567890",
                                       webhook_url=webhook_url)
        unknown = emulator.incoming_call(from_="+14155550124", to="+13125550199", connection_id="1234567890",
                                         webhook_url=webhook_url)

        async def settled() -> bool:
            return bool(emulator.calls[known.call_control_id].answered
                        and emulator.calls[unknown.call_control_id].ended_at is not None)

        await _eventually(settled)
        rejected = emulator.calls[unknown.call_control_id]
        assert not rejected.answered and rejected.hangup_cause == "call_rejected"
        calls = await (await client.get("/api/calls", headers=headers)).json()
        assert [c["to"] for c in calls["data"]] == ["+13125550100"]  # the rejected call belongs to nobody
        known.hang_up()


async def test_a_numbers_agent_is_replaced_over_rest_by_its_organisation_only(h):
    number = "+1312" + str(uuid.uuid4().int)[:7]  # unique: the PostgreSQL schema is shared by the session
    _, headers_a = await h.org("A")
    _, headers_b = await h.org("B")
    await h.client.post("/api/numbers", json={"number": number, "agent_config": {
        "personality": "professional", "first_message": "Hello!"}}, headers=headers_a)
    path = f"/api/numbers/{quote(number)}"
    new = {"agent_config": {"personality": "sales", "language": "en-GB"}}
    assert (await h.client.put(path, json=new, headers=headers_b)).status == 404  # not B's to change
    changed = await h.client.put(path, json=new, headers=headers_a)
    assert changed.status == 200, await changed.text()
    assert (await changed.json())["agent_config"] == {"personality": "sales", "language": "en-GB"}
    listed = await (await h.client.get("/api/numbers", headers=headers_a)).json()
    assert [n["agent_config"] for n in listed["data"]] == [{"personality": "sales", "language": "en-GB"}]
    for body, status in (({"agent_config": {"personality": "pirate"}}, 422),
                         ({"agent_config": {"mood": "grumpy"}}, 400), ({}, 400)):
        assert (await h.client.put(path, json=body, headers=headers_a)).status == status, body
    assert (await h.client.put(f"/api/numbers/{quote('+13125550199')}", json=new,
                               headers=headers_a)).status == 404
    assert (await h.client.put("/api/numbers/12", json=new, headers=headers_a)).status == 400
    listed = await (await h.client.get("/api/numbers", headers=headers_a)).json()
    assert listed["data"][0]["agent_config"] == {"personality": "sales", "language": "en-GB"}


async def test_each_organisation_reads_its_own_tool_signing_secret(tmp_path):
    from engine.conversation.egress import ToolEgressConfig

    async with harness(make_settings(tmp_path)) as h:  # no signing key: a clear 409
        _, headers = await h.org("A")
        off = await h.client.get("/api/organisation/tool-signing-secret", headers=headers)
        assert off.status == 409 and (await off.json())["error"]["code"] == "signing_disabled"
    key = "s" * 40
    async with harness(make_settings(tmp_path / "on", tools={"signing_key": key})) as h:
        org_a, headers_a = await h.org("A")
        _org_b, headers_b = await h.org("B")
        a = await (await h.client.get("/api/organisation/tool-signing-secret", headers=headers_a)).json()
        b = await (await h.client.get("/api/organisation/tool-signing-secret", headers=headers_b)).json()
        assert a["secrets"] == list(ToolEgressConfig(signing_key=key).signing_secrets(str(org_a.id)))
        assert a["secrets"] != b["secrets"] and key not in str(a)
        assert a["signature_header"] == "Callagent-Signature"
        assert (await h.client.get("/api/organisation/tool-signing-secret")).status == 401


async def test_an_inbound_call_runs_the_agent_set_for_its_number_in_the_dashboard(tmp_path):
    """Issue 16: an inbound line set up from a browser alone (no Python, no REST) answers
    with the agent config given in the dashboard's number form."""
    from tests.dashboard.helpers import secret_of, session_token, sign_in

    async with _system(lambda **kw: make_settings(tmp_path, **kw)) as (emulator, client, headers, org):
        assert (await sign_in(client, secret_of(headers))).status == 303
        token = await session_token(client)
        added = await client.post("/dashboard/numbers", allow_redirects=False, data={
            "csrf_token": token, "number": "+13125550100", "personality": "professional",
            "first_message": "Bright Smiles, this is the assistant.", "record": "off"})
        assert added.status == 303
        webhook_url = f"http://127.0.0.1:{client.server.port}/webhook/telnyx"
        call = emulator.incoming_call(from_="+14155550123", to="+13125550100", connection_id="1234567890",
                                      webhook_url=webhook_url)
        await _eventually(lambda: _answered(emulator, call.call_control_id))
        (listed,) = (await (await client.get("/api/calls", headers=headers)).json())["data"]
        repo = await client.app[CONTROL_PLANE_KEY].repository()
        stored = await repo.get_call(org.id, uuid.UUID(listed["id"]))
        assert stored.agent_config == {"personality": "professional",
                                       "first_message": "Bright Smiles, this is the assistant.", "record": False}
        call.hang_up()


async def _answered(emulator, ccid):  # type: ignore[no-untyped-def]
    return bool(emulator.calls[ccid].answered)
