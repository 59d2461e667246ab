"""The Telnyx emulator's webhook dispatcher always closes, even when a delivery in flight
survives its cancellation (on Python 3.11 aiohttp can turn a cancel that races its request
timeout into a TimeoutError, which a delivery treats as a failed attempt)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.telnyx_emulator.webhooks import DeliverySwitches, WebhookDispatcher

from .helpers import _serve


class _CancelSwallowingDispatcher(WebhookDispatcher):
    """A delivery whose cancellation comes back as a timed-out attempt, as in the race."""

    async def _post(self, item, attempt):
        try:
            return await super()._post(item, attempt)
        except asyncio.CancelledError:
            return None, "TimeoutError"


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_close_returns_although_a_delivery_swallowed_its_cancellation() -> None:
    arrived = asyncio.Event()

    async def never_answers(request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.sleep(3600)  # an endpoint that never answers (cancelled at close)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", never_answers)
    runner, base = await _serve(app, shutdown_timeout=0.1)
    try:
        async with aiohttp.ClientSession() as session:
            hooks = _CancelSwallowingDispatcher(
                private_key=Ed25519PrivateKey.generate(), session=session,
                default_url=f"{base}/hook", switches=DeliverySwitches(backoff_s=0.01),
            )
            hooks.emit("call.initiated", {"call_control_id": "c1"})
            await asyncio.wait_for(arrived.wait(), 5)
            await asyncio.wait_for(hooks.close(), 10)  # hung for ever before
            assert not hooks._tasks
            # Nothing goes out after close, retries included.
            sent = len(hooks.deliveries)
            hooks.emit("call.hangup", {"call_control_id": "c1"})
            await asyncio.sleep(0.1)  # virtual time: time for a wrong delivery to go out
            assert len(hooks.deliveries) == sent
    finally:
        await runner.cleanup()

