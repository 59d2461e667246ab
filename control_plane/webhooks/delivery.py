"""Sending the outbox: a background task of the control plane, never on the media path.

Each round claims due deliveries (only the head of each endpoint's per-call queue, with a
lease), POSTs them concurrently, and settles each: 2xx is delivered; anything else (another
status, a refused or timed-out connection, a blocked address) is tried again after an
exponentially growing, jittered wait, until the event is ``max_age_s`` old; then it is
``failed`` and the call's next event goes. Every attempt is logged with its status and latency.

Endpoint URLs go through the same egress policy as HTTP tools (``engine.conversation.egress``):
internal addresses are refused where the connection is made, unless the operator allows them.
Redirects are not followed (a 3xx is a failed attempt): the signed body goes only to the URL the
organisation registered.

Time is injectable (``clock``) for scheduling, so tests run a day of retries in virtual time;
the ``webhook-timestamp`` header is always the wall clock, which is what receivers check.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.resolver import DefaultResolver
from yarl import URL

from engine.conversation.egress import BlockedDestination, EgressPolicy, GuardedResolver

from ..background import SingleTask
from ..store.outbox import Attempt, ClaimedDelivery, OutboxStore, SqlOutboxStore
from ..store.records import utcnow
from .signing import headers
from .writer import OutboxWriter

if TYPE_CHECKING:
    from ..services import ControlPlane
    from ..settings import OutboundWebhookSettings
    from ..store import Repository

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300
READ_LIMIT = 4096  # of a receiver's reply: only its status matters


class Backoff:
    """``base * 2**(n-1)`` capped, times a random factor in [0.5, 1): retries of many failed
    deliveries spread out instead of hitting a recovering receiver together."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng or random.Random()

    def delay_s(self, attempts: int) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(max(attempts - 1, 0), 30))
        return ceiling * (0.5 + self._rng.random() / 2)


class Sender:
    """POSTs one signed delivery under an egress policy; never raises for the receiver's faults."""

    def __init__(self, policy: EgressPolicy, *, timeout_s: float) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy, DefaultResolver()), limit=100)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, delivery: ClaimedDelivery) -> tuple[int | None, float, str | None]:
        """(status code or None, latency in ms, error or None)."""
        refused = self.policy.literal_refusal(URL(delivery.url))
        if refused is not None:
            return None, 0.0, f"the endpoint is a {refused} address"
        signed = headers(delivery.message_id, utcnow(), delivery.body, delivery.secrets)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._client().post(delivery.url, data=delivery.body, headers=signed,
                                               allow_redirects=False) as response:
                    await response.content.read(READ_LIMIT)
                    status = response.status
        except aiohttp.ClientConnectorError as exc:
            latency = (time.perf_counter() - started) * 1000
            if isinstance(exc.os_error, BlockedDestination):
                return None, latency, f"the endpoint resolves to a {exc.os_error.kind} address"
            return None, latency, f"connection failed ({type(exc).__name__})"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, (time.perf_counter() - started) * 1000, f"request failed ({type(exc).__name__})"
        latency = (time.perf_counter() - started) * 1000
        return status, latency, None if 200 <= status < 300 else f"HTTP {status}"


class DeliveryWorker:
    """Claims, sends and settles deliveries; :meth:`run_once` is one round (tests drive it)."""

    def __init__(self, store: OutboxStore, sender: Sender, config: OutboundWebhookSettings, *,
                 clock: Callable[[], datetime] = utcnow, rng: random.Random | None = None) -> None:
        self.store = store
        self.sender = sender
        self.config = config
        self.clock = clock
        self.backoff = Backoff(config.backoff_base_s, config.backoff_cap_s, rng)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """Send every delivery due now (one claim); returns how many were attempted."""
        now = self.clock()
        claimed = await self.store.claim(now=now, limit=self.config.batch_size, lease_s=self.config.lease_s,
                                         per_org=self.config.max_in_flight_per_org)
        if claimed:
            await asyncio.gather(*(self._deliver(d, now) for d in claimed))
        return len(claimed)

    async def _deliver(self, delivery: ClaimedDelivery, claimed_at: datetime) -> None:
        status, latency_ms, error = await self.sender.send(delivery)
        attempt = Attempt(attempted_at=claimed_at, status_code=status, latency_ms=round(latency_ms, 3),
                          error=None if error is None else error[:MAX_ERROR_CHARS])
        if error is None:
            await self.store.settle(delivery.id, attempt=attempt, state="delivered")
            return
        retry_at = self.clock() + timedelta(seconds=self.backoff.delay_s(delivery.attempts))
        if retry_at > delivery.give_up_at:
            log.warning("webhook %s (delivery %d) failed after %d attempts: %s", delivery.message_id, delivery.id,
                        delivery.attempts, attempt.error)
            await self.store.settle(delivery.id, attempt=attempt, state="failed")
        else:
            await self.store.settle(delivery.id, attempt=attempt, state="pending", next_attempt_at=retry_at)

    async def run(self) -> None:
        """For ever: keep up to ``batch_size`` deliveries in flight, each settled on its own, so a
        slow endpoint (up to ``timeout_s``) holds up only its own queue, never other organisations'."""
        inflight: set[asyncio.Task[None]] = set()
        try:
            while True:
                free = self.config.batch_size - len(inflight)
                if free > 0:
                    try:
                        now = self.clock()
                        claimed = await self.store.claim(now=now, limit=free, lease_s=self.config.lease_s,
                                                         per_org=self.config.max_in_flight_per_org)
                        for delivery in claimed:
                            task = asyncio.get_running_loop().create_task(self._deliver_logged(delivery, now))
                            inflight.add(task)
                            task.add_done_callback(inflight.discard)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("webhook delivery claim failed; retrying in %.1f s",
                                      self.config.poll_interval_s)
                self._wake.clear()
                waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait()), *inflight}
                await asyncio.wait(waiters, timeout=self.config.poll_interval_s,
                                   return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters - set(inflight):
                    waiter.cancel()
        finally:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def _deliver_logged(self, delivery: ClaimedDelivery, claimed_at: datetime) -> None:
        try:
            await self._deliver(delivery, claimed_at)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store failed: the lease runs out and the delivery is claimed again
            log.exception("webhook delivery %d could not be settled", delivery.id)


class OutboundWebhooks:
    """The control plane's part: puts the outbox writer on the repository and runs the worker."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.config = cp.settings.outbound_webhooks
        self.store: SqlOutboxStore | None = None
        self.worker: DeliveryWorker | None = None
        self._sender = Sender(self.config.policy(), timeout_s=self.config.timeout_s)
        self._task = SingleTask("callagent-webhook-delivery", self._run)

    def attach(self, repo: Repository) -> None:
        self.store = SqlOutboxStore(repo.db, repo.keys)
        writer = OutboxWriter(self.store, max_age_s=self.config.max_age_s)
        self.worker = DeliveryWorker(self.store, self._sender, self.config)
        writer.on_enqueue(self.worker.wake)
        repo.hooks.listener = writer

    def start(self) -> None:
        if self.config.enabled and self.worker is not None:
            self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        await self._sender.close()

    async def _run(self) -> None:
        assert self.worker is not None
        await self.worker.run()

    def policy(self) -> EgressPolicy:
        return self._sender.policy

    def wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()
