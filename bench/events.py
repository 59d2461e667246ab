"""``callagent bench --events on``: the bench organisation's app, receiving its event webhooks.

The receiver runs in the bench process (on the load core, beside the callees), registered as the
organisation's endpoint for every event type. Each request is verified with the
``standardwebhooks`` package against the endpoint's secret (a bad signature is a 401 and
counted), de-duplicated on ``webhook-id`` (a retry of a delivered event is acknowledged, not
counted twice), and counted per call and type. Delivery lag is the time from the event's own
``timestamp`` (when the change was written) to its arrival.

After the run, what each call's record says happened (:func:`expected_events`) is what should
have arrived; ``events_missing`` and ``events_out_of_order`` must be 0.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from control_plane.store.records import TERMINAL_STATUSES

from .stats import summary


class EventReceiver:
    def __init__(self) -> None:
        self.secret: str | None = None
        self.seen: set[str] = set()
        self.per_call: dict[str, Counter[str]] = {}
        self.turn_order: dict[str, list[int]] = {}
        self.lags_ms: list[float] = []
        self.bad_signatures = 0
        self.duplicates = 0
        self.received = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/events", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/events"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time()
        if self.secret is None:
            return web.Response(status=503)
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=401)
        message_id = request.headers["webhook-id"]
        if message_id in self.seen:
            self.duplicates += 1
            return web.Response(status=204)
        self.seen.add(message_id)
        self.received += 1
        self.lags_ms.append((arrived - datetime.fromisoformat(payload["timestamp"]).timestamp()) * 1000)
        data = payload.get("data") or {}
        call_id = data.get("call_id")
        if call_id is not None:
            self.per_call.setdefault(call_id, Counter())[payload["type"]] += 1
            if payload["type"] == "call.turn":
                self.turn_order.setdefault(call_id, []).append(data["index"])
        return web.Response(status=204)

    async def register(self, http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> None:
        """The organisation's endpoint for every event type (the API's default)."""
        async with http.post(f"{base}/api/webhooks/endpoints", headers=headers,
                             json={"url": self.url, "description": "callagent bench"}) as response:
            body = await response.json()
            if response.status != 201:
                raise RuntimeError(f"registering the event endpoint failed: HTTP {response.status} {body}")
        self.secret = body["secret"]

    def count(self) -> int:
        return self.received

    def figures(self, expected: dict[str, Counter[str]]) -> dict[str, Any]:
        want = sum(sum(c.values()) for c in expected.values())
        missing = Counter[str]()
        for call_id, types in expected.items():
            missing += types - self.per_call.get(call_id, Counter())
        out_of_order = sum(1 for order in self.turn_order.values() if order != sorted(order))
        return {
            "events_expected": want, "events_received": self.received,
            "events_missing": sum(missing.values()), "events_missing_by_type": dict(missing),
            "events_out_of_order_calls": out_of_order, "bad_signatures": self.bad_signatures,
            "duplicates": self.duplicates, "delivery_lag_ms": summary(self.lags_ms),
        }


def expected_events(detail: dict[str, Any]) -> Counter[str]:
    """The events a call's record says were written for it (``control_plane/webhooks/events.py``)."""
    want: Counter[str] = Counter({"call.started": 1})
    if detail.get("answered_at"):
        want["call.answered"] = 1
    if detail.get("status") in TERMINAL_STATUSES:
        want["call.ended"] = 1
    if detail.get("summary") or detail.get("outcome"):
        want["call.summary"] = 1
    if detail.get("recording_url"):
        want["call.recording_ready"] = 1
    if detail.get("amd_result"):
        want["call.machine_detection"] = 1
    if detail.get("turns"):
        want["call.turn"] = len(detail["turns"])
    return want


async def wait_for(condition: Any, timeout_s: float) -> bool:
    """Poll ``condition()`` (sync or async) every 0.2 s until true or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result or time.monotonic() >= deadline:
            return bool(result)
        await asyncio.sleep(0.2)
