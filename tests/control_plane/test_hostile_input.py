"""Hostile input at the API gets nowhere (issue 14 items 3 and 7): tool URLs that point inside,
oversized fields, error messages that echo what was sent, campaign data stored in plaintext."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from control_plane.admin import set_organisation_settings
from tests.fixtures.waiting import eventually

from .conftest import make_settings
from .fakes import harness

AGENT = {"personality": "friendly", "voice": "Telnyx.NaturalHD.astra", "language": "en-US"}


def with_tool(url: str) -> dict:
    return {**AGENT, "http_tools": [{"name": "lookup", "description": "d", "url": url}]}


# -- tool URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("url", "kind"), [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://127.0.0.1:6379/", "loopback"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("https://100.64.1.1/", "shared (CGNAT)"),
])
async def test_a_tool_url_that_is_an_internal_address_is_400_and_nothing_is_dialled(url, kind, h):
    _, headers = await h.org()
    response = await h.start_call(headers, agent_config=with_tool(url))
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "validation_error"
    assert kind in error["message"] and "http_tools[0].url" in error["message"]
    assert error["details"][0]["loc"] == ["agent_config", "http_tools", 0, "url"]
    assert url.split("//")[1].split("/")[0] not in await response.text()  # the address is not echoed
    assert h.telnyx.named("dial") == []


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/x"])
async def test_a_tool_url_that_is_not_http_is_400(url, h):
    _, headers = await h.org()
    response = await h.start_call(headers, agent_config=with_tool(url))
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "validation_error"
    assert h.telnyx.named("dial") == []


async def test_an_organisation_allow_list_and_the_server_setting_open_internal_tool_urls(tmp_path):
    settings = make_settings(tmp_path, tools={"tenant_allowable_networks": ["10.0.0.0/8"]})
    async with harness(settings) as h:
        org, headers = await h.org()
        assert (await h.start_call(headers, agent_config=with_tool("http://10.1.2.3/x"))).status == 400
        await set_organisation_settings(org.id, settings=settings, tool_allowed_destinations=["10.1.0.0/16"])
        assert (await h.start_call(headers, agent_config=with_tool("http://10.1.2.3/x"))).status == 201
        assert (await h.start_call(headers, agent_config=with_tool("http://10.2.2.3/x"))).status == 400
    with pytest.raises(ValueError, match="#1"):
        await set_organisation_settings(org.id, settings=settings, tool_allowed_destinations=["not a host!"])
    local = make_settings(tmp_path, tools={"allow_private_addresses": True})
    async with harness(local) as h:
        _, headers = await h.org("local")
        assert (await h.start_call(headers, agent_config=with_tool("http://127.0.0.1:8081/x"))).status == 201
        metadata = await h.start_call(headers, agent_config=with_tool("http://169.254.169.254/"))
        assert metadata.status == 400  # never opened by allow_private_addresses


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_campaigns_refuse_internal_tool_urls_too(h):
    _, headers = await h.org()
    response = await h.client.post("/api/campaigns", headers=headers, json={
        "name": "c", "agent_config": with_tool("http://169.254.169.254/"),
        "caller_numbers": ["+14155550100"],
    })
    assert response.status == 400
    assert "cloud metadata" in (await response.json())["error"]["message"]


# -- caps, and errors that do not echo ------------------------------------------------------

MARK = "<script>HOSTILE</script>"


def _tool(**extra) -> dict:
    return {"name": "lookup", "description": "d", "url": "https://tools.example.com/x", **extra}


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("overrides", "loc", "limit"), [
    ({"system_prompt": MARK * 40_000}, ["agent_config", "system_prompt"], "20000"),  # ~960 KB
    ({"variables": {f"v{i}": MARK for i in range(5000)}}, ["agent_config", "variables"], "50"),
    ({"variables": {"name": MARK * 100}}, ["agent_config", "variables"], "1000"),
    ({"variables": {MARK * 5: "x"}}, ["agent_config", "variables"], "64"),
    ({"first_message": MARK * 100}, ["agent_config", "first_message"], "1000"),
    ({"apology_text": MARK * 100}, ["agent_config", "apology_text"], "1000"),
    ({"summary_fields": {f"f{i}": MARK for i in range(30)}}, ["agent_config", "summary_fields"], "20"),
    ({"http_tools": [_tool(name=f"t{i}") for i in range(17)]}, ["agent_config", "http_tools"], "16"),
    ({"http_tools": [_tool(description=MARK * 100)]}, ["agent_config", "http_tools", 0, "description"], "1000"),
    ({"http_tools": [_tool(parameters={"type": "object", "description": MARK * 500})]},
     ["agent_config", "http_tools", 0, "parameters"], "8192"),
    ({"http_tools": [_tool(headers={"X-Key": MARK * 200})]}, ["agent_config", "http_tools", 0, "headers"], "4096"),
    ({"http_tools": [_tool(headers={f"X-{i}": MARK for i in range(20)})]},
     ["agent_config", "http_tools", 0, "headers"], "16"),
])
async def test_oversized_agent_configs_are_400_naming_field_and_limit_without_the_value(
        tmp_path, overrides, loc, limit, h):
    _, headers = await h.org()
    response = await h.start_call(headers, agent_config={**AGENT, **overrides})
    assert response.status == 400
    text = await response.text()
    assert "HOSTILE" not in text
    (detail,) = (await response.json())["error"]["details"]
    assert detail["loc"] == loc and limit in detail["msg"]
    assert h.telnyx.named("dial") == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_header_with_a_line_break_is_refused(h):
    _, headers = await h.org()
    tool = _tool(headers={"X-Key": "a\r\nX-Injected: 1"})
    response = await h.start_call(headers, agent_config={**AGENT, "http_tools": [tool]})
    assert response.status == 400
    assert "Injected" not in await response.text()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_unknown_names_and_hostile_keys_are_not_echoed(h):
    _, headers = await h.org()
    personality = await h.start_call(headers, agent_config={**AGENT, "personality": "<img src=x>"})
    assert personality.status == 422
    error = (await personality.json())["error"]
    assert error["message"].startswith("unknown personality; known: ") and "img" not in error["message"]
    tools = await h.start_call(headers, agent_config={**AGENT, "tools": [MARK]})
    assert tools.status == 422 and "HOSTILE" not in await tools.text()
    wrong_type = await h.start_call(headers, agent_config={**AGENT, "variables": {MARK: 1}})
    assert wrong_type.status == 400
    assert "HOSTILE" not in await wrong_type.text()
    (detail,) = (await wrong_type.json())["error"]["details"]
    assert detail["loc"] == ["agent_config", "variables", "<key>"]
    plain = await h.start_call(headers, agent_config={**AGENT, "variables": {"first_name": 1}})
    assert (await plain.json())["error"]["details"][0]["loc"] == ["agent_config", "variables", "first_name"]
    assert h.telnyx.named("dial") == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_configs_at_the_limits_are_accepted(h):
    _, headers = await h.org()
    response = await h.start_call(headers, agent_config={
        **AGENT, "system_prompt": "p" * 20_000, "first_message": "m" * 1000,
        "variables": {f"v{i:02d}" + "k" * 60: "x" * 1000 for i in range(50)},
        "http_tools": [_tool(name=f"t{i}") for i in range(16)],
    })
    assert response.status == 201, await response.text()


# -- campaigns sealed at rest -------------------------------------------------------------------

SECRET_PROMPT = "You sell the Zanzibar plan; the discount code is OWL-4471."
CALLER = "+14155550177"


async def _raw_campaign(cp, campaign_id) -> tuple[str, str]:
    """The campaigns and campaign_dialer rows as the database holds them, as text."""
    repo = await cp.repository()
    async with repo.connection() as conn:
        campaign = await conn.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
        dialer = await conn.fetchrow("SELECT * FROM campaign_dialer WHERE campaign_id = $1", campaign_id)
    return str(dict(campaign)), str(dict(dialer))


async def test_a_campaigns_agent_config_and_caller_numbers_are_sealed_at_rest(h):
    org, headers = await h.org()
    created = await h.client.post("/api/campaigns", headers=headers, json={
        "name": "spring", "caller_numbers": [CALLER, "+14155550178"],
        "agent_config": {**AGENT, "system_prompt": SECRET_PROMPT, "variables": {"plan": "Zanzibar"}},
    })
    assert created.status == 201, await created.text()
    campaign_id = (await created.json())["id"]
    campaign_row, dialer_row = await _raw_campaign(h.cp, campaign_id)
    for raw in (campaign_row, dialer_row):
        assert "Zanzibar" not in raw and "OWL-4471" not in raw
        assert "4155550177" not in raw and "4155550178" not in raw
    assert "v1." in campaign_row and "v1." in dialer_row  # sealed tokens
    shown = await (await h.client.get(f"/api/campaigns/{campaign_id}", headers=headers)).json()
    assert shown["agent_config"]["system_prompt"] == SECRET_PROMPT
    assert shown["config"]["caller_numbers"] == [CALLER, "+14155550178"]
    store = await h.cp.campaigns.store()
    assert (await store.get(org.id, uuid.UUID(campaign_id))).from_number == CALLER


async def test_campaigns_stored_in_plaintext_before_still_read_and_are_sealed_at_start(backend, tmp_path,
                                                                                    own_pg_schema):
    from control_plane.campaigns.store import CampaignStore

    # Its own schema: sealing covers every plaintext row in the database, whoever wrote it.
    settings = make_settings(tmp_path, backend=backend, pg_schema=own_pg_schema)
    campaign_id = uuid.uuid4()
    # What the code before sealing wrote, there before this version starts. (Written while an app
    # with this version ran, the dialer's start raced the insert: sealed by it, or left to the test.)
    async with harness(make_settings(tmp_path, backend=backend, pg_schema=own_pg_schema,
                                     campaigns={"dialer": False})) as old:
        org, headers = await old.org()
        repo = await old.cp.repository()
        now = datetime.now(UTC)
        config = {"caller_numbers": [CALLER]}
        async with repo.transaction() as conn:
            await conn.execute(
                "INSERT INTO campaigns (id, org_id, name, status, agent_config, from_number, created_at, updated_at)"
                " VALUES ($1, $2, $3, 'draft', $4, $5, $6, $6)",
                campaign_id, org.id, "old", {**AGENT, "system_prompt": SECRET_PROMPT}, CALLER, now)
            await conn.execute("INSERT INTO campaign_dialer (campaign_id, org_id, config) VALUES ($1, $2, $3)",
                               campaign_id, org.id, config)
        # Plaintext rows read as they are.
        plain = CampaignStore(repo)
        assert (await plain.get(org.id, campaign_id)).agent_config["system_prompt"] == SECRET_PROMPT
        assert (await plain.config(campaign_id)).caller_numbers == (CALLER,)
        assert all("OWL-4471" in raw or "4155550177" in raw for raw in await _raw_campaign(old.cp, campaign_id))

    async with harness(settings) as h:  # this version starts: its dialer seals them
        async def sealed() -> bool:
            return not any("OWL-4471" in raw or "4155550177" in raw for raw in await _raw_campaign(h.cp, campaign_id))

        await eventually(sealed, what="the dialer's start sealed the older campaign")
        repo = await h.cp.repository()
        assert await CampaignStore(repo).seal_plaintext_rows() == 0  # nothing left, and idempotent
        shown = await (await h.client.get(f"/api/campaigns/{campaign_id}", headers=headers)).json()
        assert shown["agent_config"]["system_prompt"] == SECRET_PROMPT
        assert shown["config"]["caller_numbers"] == [CALLER]
        fresh = CampaignStore(repo)  # no cached config
        assert (await fresh.config(campaign_id)).caller_numbers == (CALLER,)
        assert (await fresh.get(org.id, campaign_id)).agent_config["system_prompt"] == SECRET_PROMPT
        assert (await fresh.get(org.id, campaign_id)).from_number == CALLER


async def test_a_calls_stream_gets_its_organisations_tool_allow_list(tmp_path):
    from uuid import UUID

    from control_plane.pipeline import CallPorts
    from control_plane.streamauth import StreamCredential
    from engine.protocol import Start

    settings = make_settings(tmp_path, tools={"tenant_allowable_networks": ["10.0.0.0/8"]})
    async with harness(settings) as h:
        org, headers = await h.org()
        await set_organisation_settings(org.id, settings=settings, tool_allowed_destinations=["billing.corp"])
        with_tools = await (await h.start_call(headers, agent_config=with_tool("https://billing.corp/x"))).json()
        without = await (await h.start_call(headers, to="+14155550124")).json()
        async def destinations(started):
            ccid = started["call_control_id"]
            ports = CallPorts(h.cp, StreamCredential("call", UUID(started["call_id"])))  # the call's own stream
            setup = await ports.setup(Start(stream_id="s-" + ccid, call_control_id=ccid, encoding="PCMU",
                                            sample_rate=8000))
            return setup.tool_destinations

        assert await destinations(with_tools) == ("billing.corp",)
        assert await destinations(without) == ()  # no HTTP tools: the organisation is not even read
