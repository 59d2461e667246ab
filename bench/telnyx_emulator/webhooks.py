"""Webhook delivery as Telnyx does it: signed envelopes, retries with backoff.

Each event is posted as ``{"data": {...}, "meta": {"attempt", "delivered_to"}}`` with
``telnyx-signature-ed25519`` / ``telnyx-timestamp`` headers, re-signed on every attempt.
2xx is delivered; 408, 429, 5xx, timeouts (2 s) and connection errors are retried with
exponential backoff; other 3xx/4xx are final (Telnyx's voice webhook docs).

Telnyx "delivers concurrently" to "minimize webhook delivery time" (its webhook
fundamentals page): one call's slow or timed-out webhook never holds back another call's.
Here each call has its own lane, so its first attempts leave in emission order (which keeps
tests deterministic) while the lanes of different calls run side by side; a retry leaves its
lane at once. The switches then break the order on purpose, because real webhooks can arrive
duplicated, out of order and late.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yarl import URL

from control_plane.telnyx.webhooks import sign

__all__ = ["Delivery", "DeliverySwitches", "WebhookDispatcher"]

log = logging.getLogger(__name__)

USER_AGENT = "telnyx-webhooks"


@dataclass
class DeliverySwitches:
    """Test switches; all off by default. Changes apply to events emitted afterwards."""

    duplicate: float = 0.0
    """Probability that an event is delivered twice (same ``data.id``)."""
    reorder_window: int = 0
    """Shuffle events in windows of this many (a window never comes out in order)."""
    reorder_linger_s: float = 0.05
    """How long a partly filled window waits for more events."""
    delay_s: float = 0.0
    """Every event leaves this late."""
    timeout_s: float = 2.0
    max_attempts: int = 4
    backoff_s: float = 0.25
    """Delay before the first retry; doubles each time."""
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One HTTP attempt."""

    event_id: str
    event_type: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    at: float


@dataclass(eq=False)
class _Item:
    url: str
    data: dict[str, Any]
    due: float
    lane: str


_REORDERED = "\x00reordered"
"""The one lane the reorder switch's shuffled windows go out on."""


def _retryable(status: int | None) -> bool:
    return status is None or status in (408, 429) or status >= 500


@dataclass(eq=False)
class WebhookDispatcher:
    private_key: Ed25519PrivateKey
    session: aiohttp.ClientSession
    default_url: str | None = None
    switches: DeliverySwitches = field(default_factory=DeliverySwitches)

    def __post_init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self._rng = random.Random(self.switches.seed)
        self._lanes: dict[str, deque[_Item]] = {}  # per call: first attempts not yet answered
        self._tasks: set[asyncio.Task[None]] = set()
        self._window: list[_Item] = []
        self._window_timer: asyncio.TimerHandle | None = None
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    def _spawn(self, coro: Any) -> None:
        if self._closed:
            coro.close()  # (a retry after close: nothing more goes out)
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- emission ------------------------------------------------------------------------

    def emit(self, event_type: str, payload: dict[str, Any], *, url: str | None = None,
             order_key: str = "") -> dict[str, Any]:
        """Record an event and queue it for delivery; returns its ``data`` object."""
        data = {
            "record_type": "event", "event_type": event_type, "id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "payload": payload,
        }
        self.events.append(data)
        url = url or self.default_url
        if url is None or self._closed:
            log.debug("no webhook URL for %s; not delivered", event_type)
            return data
        loop = asyncio.get_running_loop()
        item = _Item(url, data, loop.time() + self.switches.delay_s, order_key)
        copies = 2 if self.switches.duplicate and self._rng.random() < self.switches.duplicate else 1
        for _ in range(copies):
            self._pending += 1
            self._idle.clear()
            if self.switches.reorder_window > 1:
                self._hold(_Item(item.url, item.data, item.due, _REORDERED))
            else:
                self._enqueue(item)
        return data

    def _hold(self, item: _Item) -> None:
        # Reordered events share one lane so the shuffle is what the receiver sees.
        self._window.append(item)
        if len(self._window) >= self.switches.reorder_window:
            self._release_window()
        elif self._window_timer is None:
            self._window_timer = asyncio.get_running_loop().call_later(
                self.switches.reorder_linger_s, self._release_window)

    def _release_window(self) -> None:
        if self._window_timer is not None:
            self._window_timer.cancel()
            self._window_timer = None
        window, self._window = self._window, []
        if len(window) > 1:
            shuffled = window[:]
            self._rng.shuffle(shuffled)
            if shuffled == window:  # a window that comes out in order tests nothing
                shuffled = window[1:] + window[:1]
            window = shuffled
        for item in window:
            self._enqueue(item)

    # -- delivery ------------------------------------------------------------------------

    def _enqueue(self, item: _Item) -> None:
        lane = self._lanes.get(item.lane)
        if lane is not None:
            lane.append(item)  # its lane's task is running: it takes it in turn
            return
        self._lanes[item.lane] = deque([item])
        self._spawn(self._run_lane(item.lane))

    async def _run_lane(self, key: str) -> None:
        """First attempts of one lane, one after the other; the lane is gone once empty."""
        lane = self._lanes[key]
        loop = asyncio.get_running_loop()
        try:
            while lane and not self._closed:
                item = lane[0]
                try:
                    wait = item.due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    await self._deliver(item, 1)
                except Exception:  # a lane must survive anything one delivery does
                    log.exception("webhook delivery failed")
                    self._done()
                lane.popleft()
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _deliver(self, item: _Item, attempt: int) -> None:
        status, error = await self._post(item, attempt)
        if status is not None and 200 <= status < 300:
            self._done()
        elif _retryable(status) and attempt < self.switches.max_attempts:
            backoff = self.switches.backoff_s * 2 ** (attempt - 1)
            self._spawn(self._retry(item, attempt + 1, backoff))
        else:
            log.info("webhook %s to %s given up after attempt %d (%s)", item.data["event_type"],
                     URL(item.url).with_query(None), attempt, status if status is not None else error)
            self._done()

    async def _retry(self, item: _Item, attempt: int, backoff: float) -> None:
        await asyncio.sleep(backoff)
        await self._deliver(item, attempt)

    async def _post(self, item: _Item, attempt: int) -> tuple[int | None, str | None]:
        body = orjson.dumps({"data": item.data, "meta": {"attempt": attempt, "delivered_to": item.url}})
        headers = sign(body, self.private_key, int(time.time()))
        headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT})
        status: int | None = None
        error: str | None = None
        try:
            async with self.session.post(
                item.url, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.switches.timeout_s),
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = type(exc).__name__
        self.deliveries.append(Delivery(item.data["id"], item.data["event_type"], item.url, attempt, status, error,
                                        time.time()))
        return status, error

    def _done(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self._pending = 0
            self._idle.set()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued event is delivered or given up."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        self._closed = True
        if self._window_timer is not None:
            self._window_timer.cancel()
        # Cancel until every task is gone: a cancellation that lands as an aiohttp request
        # times out comes back as a TimeoutError (Python 3.11), which a delivery survives.
        while self._tasks:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.wait(list(self._tasks), timeout=1.0)
