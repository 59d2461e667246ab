"""An HTTP tool called in a real call through the control plane receives the call's context
(call id, organisation, numbers, direction, variables) and a signature the receiver can verify
with the secret its organisation reads over REST (issue 18 item 2)."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.callee import EmulatorCallee
from bench.corpus.model import load_corpus
from engine.conversation.context import verify
from engine.conversation.egress import ToolEgressConfig

from .conftest import make_settings
from .live import eventually, world

SIGNING_KEY = "tool-signing-key-for-tests-0123456789"


@pytest.mark.asyncio(loop_factories=["virtual"])  # a whole call, every party on this loop
async def test_an_http_tool_gets_the_calls_context_and_a_verifiable_signature(tmp_path):
    requests: list[tuple[bytes, dict[str, str]]] = []

    async def order_service(request: web.Request) -> web.Response:
        requests.append((await request.read(), dict(request.headers)))
        return web.Response(text="Order 472918 left the warehouse on Monday.")

    tool_app = web.Application()
    tool_app.router.add_post("/order", order_service)
    tool_server = TestServer(tool_app)
    await tool_server.start_server()
    script = next(s for s in load_corpus() if s.name == "plain-01-order-status")
    try:
        async with world(lambda **kw: make_settings(tmp_path, tools={"allow_private_addresses": True,
                                                                       "signing_key": SIGNING_KEY}, **kw),
                         callee_factory=EmulatorCallee(lambda call: script),
                         tool_egress=ToolEgressConfig(allow_private_addresses=True)) as w:
            (server,) = w.servers
            tool = {"name": "order_status", "description": "Where an order is.",
                    "url": f"http://127.0.0.1:{tool_server.port}/order",
                    "parameters": {"type": "object", "properties": {"order_number": {"type": "string"}},
                                   "required": ["order_number"]}}
            started = await w.start_call(server, agent_config={
                "personality": "friendly", "first_message": "Hello there!", "http_tools": [tool],
                "variables": {"customer_tier": "gold"}})
            await eventually(lambda: _truthy(requests), timeout=60)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{server.base}/api/organisation/tool-signing-secret",
                                    headers=w.headers) as response:
                    secrets = (await response.json())["secrets"]
                async with http.get(f"{server.base}/api/organisation", headers=w.headers) as response:
                    org_id = (await response.json())["id"]

                async def spoken() -> list[str]:
                    async with http.get(f"{server.base}/api/calls/{started['call_id']}",
                                        headers=w.headers) as response:
                        turns = (await response.json()).get("turns") or []
                    return [t["agent_text"] for t in turns if "warehouse" in (t.get("agent_text") or "")]

                said = await eventually(spoken, timeout=60)
    finally:
        await tool_server.close()

    body, headers = requests[0]
    payload = orjson.loads(body)
    assert payload["tool"] == "order_status" and payload["arguments"] == {"order_number": "472918"}
    assert payload["call"] == {
        "call_id": started["call_id"], "organisation_id": org_id, "call_control_id": started["call_control_id"],
        "from": "+14155550100", "to": "+14155550123", "direction": "outbound",
        "variables": {"customer_tier": "gold"}}
    assert verify(secrets[0].encode(), headers, body)
    assert not verify(b"another organisation's secret", headers, body)
    assert "Order 472918 left the warehouse on Monday." in said[0]


async def _truthy(value):
    return bool(value)
