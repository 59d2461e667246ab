"""Hostile input at the API gets nowhere (issue 14 items 3 and 7): tool URLs that point inside,
oversized fields, error messages that echo what was sent, campaign data stored in plaintext."""

from __future__ import annotations

import pytest

from control_plane.admin import set_organisation_settings

from .conftest import make_settings
from .fakes import harness
from .helpers import run_async

AGENT = {"personality": "friendly", "voice": "Telnyx.NaturalHD.astra", "language": "en-US"}


def with_tool(url: str) -> dict:
    return {**AGENT, "http_tools": [{"name": "lookup", "description": "d", "url": url}]}


# -- tool URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "kind"), [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://127.0.0.1:6379/", "loopback"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("https://100.64.1.1/", "shared (CGNAT)"),
])
@run_async
async def test_a_tool_url_that_is_an_internal_address_is_400_and_nothing_is_dialled(tmp_path, url, kind):
    async with harness(make_settings(tmp_path)) as h:
        _, headers = await h.org()
        response = await h.start_call(headers, agent_config=with_tool(url))
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "validation_error"
        assert kind in error["message"] and "http_tools[0].url" in error["message"]
        assert error["details"][0]["loc"] == ["agent_config", "http_tools", 0, "url"]
        assert url.split("//")[1].split("/")[0] not in await response.text()  # the address is not echoed
        assert h.telnyx.named("dial") == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/x"])
@run_async
async def test_a_tool_url_that_is_not_http_is_400(tmp_path, url):
    async with harness(make_settings(tmp_path)) as h:
        _, headers = await h.org()
        response = await h.start_call(headers, agent_config=with_tool(url))
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "validation_error"
        assert h.telnyx.named("dial") == []


@run_async
async def test_an_organisation_allow_list_and_the_server_setting_open_internal_tool_urls(tmp_path):
    settings = make_settings(tmp_path)
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


@run_async
async def test_campaigns_refuse_internal_tool_urls_too(tmp_path):
    async with harness(make_settings(tmp_path)) as h:
        _, headers = await h.org()
        response = await h.client.post("/api/campaigns", headers=headers, json={
            "name": "c", "agent_config": with_tool("http://169.254.169.254/"),
            "caller_numbers": ["+14155550100"],
        })
        assert response.status == 400
        assert "cloud metadata" in (await response.json())["error"]["message"]
