"""The Telnyx emulator delivers the webhooks of different calls concurrently, as Telnyx does
("delivers concurrently", to "minimize webhook delivery time"): a call whose webhooks time out
at a slow endpoint holds back none of another call's. (It used to share 8 serial workers among
all calls, so under load a ``call.hangup`` waited behind other calls' 2 s timeouts for up to
30 s, and the engine's recovery sweep ended the call as lost before its hangup arrived.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.telnyx_emulator.webhooks import DeliverySwitches, WebhookDispatcher

SLOW_CALLS = 80  # more than enough to put a slow call in front of any shared worker


@contextlib.asynccontextmanager
async def endpoint(arrivals: list[tuple[str, str]]) -> AsyncIterator[str]:
    """A webhook endpoint that never answers the calls named ``slow-*`` (their attempts time out)."""

    async def receive(request: web.Request) -> web.Response:
        data = orjson.loads(await request.read())["data"]
        ccid = data["payload"]["call_control_id"]
        arrivals.append((ccid, data["event_type"]))
        if ccid.startswith("slow-"):
            await asyncio.sleep(3600)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_a_slow_call_does_not_hold_back_another_calls_hangup() -> None:
    arrivals: list[tuple[str, str]] = []
    async with endpoint(arrivals) as url, aiohttp.ClientSession() as session:
        hooks = WebhookDispatcher(private_key=Ed25519PrivateKey.generate(), session=session, default_url=url,
                                  switches=DeliverySwitches(max_attempts=1))
        try:
            for i in range(SLOW_CALLS):
                hooks.emit("call.answered", {"call_control_id": f"slow-{i}"}, order_key=f"slow-{i}")
            hooks.emit("call.hangup", {"call_control_id": "fast"}, order_key="fast")
            async with asyncio.timeout(30):
                while ("fast", "call.hangup") not in arrivals:
                    await asyncio.sleep(0.01)
            # It went out while every slow call's first attempt was still waiting for its answer.
            assert not [d for d in hooks.deliveries if d.event_type == "call.answered"]
            assert [(d.event_type, d.status) for d in hooks.deliveries] == [("call.hangup", 200)]
        finally:
            await hooks.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_one_calls_webhooks_still_leave_in_order() -> None:
    arrivals: list[tuple[str, str]] = []
    async with endpoint(arrivals) as url, aiohttp.ClientSession() as session:
        hooks = WebhookDispatcher(private_key=Ed25519PrivateKey.generate(), session=session, default_url=url)
        try:
            kinds = ["call.initiated", "call.answered", "streaming.started", "streaming.stopped", "call.hangup"]
            for kind in kinds:
                hooks.emit(kind, {"call_control_id": "c1"}, order_key="c1")
            await hooks.drain()
            assert [kind for _, kind in arrivals] == kinds
        finally:
            await hooks.close()
