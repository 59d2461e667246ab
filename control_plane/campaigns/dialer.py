"""The dialer: claims due contacts, paces, commits an attempt, dials it exactly once, settles outcomes.

One :class:`Dialer` per process (the app's background task, or ``python -m
control_plane.campaigns.worker``); it runs a :class:`CampaignRunner` for every campaign that
has work. Any number of processes may run against PostgreSQL: they share nothing but the
database (claims, caps) and Redis (pacing, the organisation's call-start limit).

One contact, one attempt (see store.py for the states):

1. **claim** (``claimed``, token + lease) -> DNC check -> calling window (else
   ``outside_window`` until it opens) -> pacing slot -> organisation rate limit;
2. **commit** in one transaction: campaign running, live calls under the cap, a caller number
   under its cap, contact -> ``dialing`` with ``attempts + 1`` and ``dial_started_at``, and the
   attempt's call row inserted, its id ``uuid5(contact, attempt)``;
3. **dial** with ``command_id`` = that call id (and ``client_state`` naming it);
4. **record**: the call row gets its ``call_control_id``, the contact -> ``in_progress``;
5. the call's ``call.hangup`` (webhook -> call row final) **settles** the contact: retry with
   backoff, or one terminal state.

A worker dying anywhere leaves a ``claimed``/``dialing`` row whose lease runs out; another
worker takes it over (``claim_expired``). ``claimed``: nothing was dialled, it goes back to
the queue. ``dialing``: the call row says what happened - a ``call_control_id`` or a later
status (from the dial response or from webhooks, which find the row through ``client_state``)
means it was dialled; a failure is settled; otherwise the dial is re-sent with the *same*
command_id while Telnyx still de-duplicates it (``dial_started_at`` + 60 s, minus a margin, read on
the clock it was stamped on: the database's), so it cannot ring twice. Past that window nothing is
re-sent: the attempt waits
``unconfirmed_grace_s`` for a webhook proving the dial, then ends ``failed``
(``dial_unconfirmed``) - a missed call is preferred to a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from .. import lifecycle
from ..agents import effective_agent
from ..calls import RATE_WINDOW_S, telnyx_error_details
from ..callstate import client_state_for, dialled, failed
from ..store import Call, StatusChange, utcnow
from ..store.usage import UsageFigures
from ..streamauth import stream_target
from ..telnyx.client import TelnyxApiError, TelnyxError, TelnyxRateLimited
from ..usage import call_cost
from ..voicemail import holds_agent
from .models import CampaignConfig
from .outcomes import UNCONFIRMED, agent_success, classify, decide
from .pacing import MemoryPacer, Pacer, RedisPacer, pacing_burst
from .rows import call_agent_config
from .stale import check_stale
from .store import Applied, CampaignStore, ContactRow, DialCampaign
from .timezones import UnknownTimeZone, Window, contact_zones, zone

if TYPE_CHECKING:
    from ..services import ControlPlane

log = logging.getLogger(__name__)

RECORD_GRACE_S = 5.0
"""After Telnyx answers a dial, the dial task still writes what it said (the call row, the contact):
stopping waits this long past ``dial_timeout_s`` for those writes."""


class Dialer:
    def __init__(self, cp: ControlPlane, *, clock: Callable[[], datetime] = utcnow, worker_id: str | None = None,
                 pacer: Pacer | None = None, telnyx: Any = None) -> None:
        self.cp = cp
        self.clock = clock
        self.telnyx = telnyx  # None: the control plane's client
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"
        self._pacer = pacer
        self._store: CampaignStore | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.runners: dict[UUID, CampaignRunner] = {}
        self._runner_tasks: dict[UUID, asyncio.Task[None]] = {}
        self.dial_tasks: set[asyncio.Task[Any]] = set()

    @property
    def settings(self) -> Any:
        return self.cp.settings.campaigns

    async def store(self) -> CampaignStore:
        if self._store is None:
            store = CampaignStore(await self.cp.repository())
            try:  # campaigns stored before they were sealed (they read either way)
                if sealed := await store.seal_plaintext_rows():
                    log.info("sealed the agent_config and caller numbers of %d older campaigns", sealed)
            except Exception as exc:
                log.warning("could not seal older campaigns yet: %s", type(exc).__name__)
            self._store = store
        return self._store

    def telnyx_client(self) -> Any:
        return self.telnyx if self.telnyx is not None else self.cp.telnyx_client()

    @property
    def pacer(self) -> Pacer:
        if self._pacer is None:
            redis = self.cp.redis
            self._pacer = RedisPacer(redis, self.cp.settings.redis_key_prefix) if redis is not None else MemoryPacer()
        return self._pacer

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name="callagent-dialer")

    @property
    def running(self) -> bool:
        """The background dialer is claiming contacts."""
        return self._task is not None and not self._task.done()

    def notify(self, campaign_id: UUID | None = None) -> None:
        """Something changed (a campaign started, a call ended): look now instead of at the next poll."""
        self._wake.set()
        if campaign_id is not None and campaign_id in self.runners:
            self.runners[campaign_id].wake.set()

    @property
    def stop_grace_s(self) -> float:
        """How long :meth:`stop` waits for the dials in flight: their request's budget
        (``dial_timeout_s``) and the writes after it. The deploy files' grace periods cover it."""
        return self.settings.dial_timeout_s + RECORD_GRACE_S

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop claiming; let dials in flight finish (up to ``timeout_s``, by default
        :attr:`stop_grace_s`: a dial cut short leaves its attempt to another worker's re-send
        window, or to a missed call past it); hand back unsent claims."""
        if timeout_s is None:
            timeout_s = self.stop_grace_s
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._runner_tasks.values()) if t is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._runner_tasks.clear()
        if self.dial_tasks:
            _, pending = await asyncio.wait(self.dial_tasks, timeout=timeout_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _supervise(self) -> None:
        interval = self.settings.poll_interval_s
        while True:
            self._wake.clear()
            try:
                store = await self.store()
                for campaign_id in [c for c, t in self._runner_tasks.items() if t.done()]:
                    del self._runner_tasks[campaign_id]
                    self.runners.pop(campaign_id, None)
                for campaign_id in await store.campaigns_to_work():
                    task = self._runner_tasks.get(campaign_id)
                    if task is None or task.done():
                        runner = self.runners.get(campaign_id) or CampaignRunner(self, campaign_id)
                        self.runners[campaign_id] = runner
                        self._runner_tasks[campaign_id] = asyncio.get_running_loop().create_task(
                            runner.run(), name=f"callagent-campaign-{campaign_id}")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dialer: looking for campaigns failed; retrying in %.1f s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)

    def runner(self, campaign_id: UUID) -> CampaignRunner:
        """The runner of a campaign (tests drive it with :meth:`CampaignRunner.step`)."""
        if campaign_id not in self.runners:
            self.runners[campaign_id] = CampaignRunner(self, campaign_id)
        return self.runners[campaign_id]

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.dial_tasks.add(task)
        task.add_done_callback(self._dial_done)
        return task

    def _dial_done(self, task: asyncio.Task[Any]) -> None:
        self.dial_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dialer: a dial task failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the dials this process has in flight."""
        while self.dial_tasks:
            await asyncio.gather(*list(self.dial_tasks), return_exceptions=True)

    # -- outcomes ------------------------------------------------------------------------------

    async def settle(self, call: Call) -> Applied | None:
        """Apply a finished call to its contact (idempotent; from webhooks, the dialer and sweeps)."""
        if call.campaign_id is None or not call.terminal:
            return None
        store = await self.store()
        now = self.clock()
        default_prices = self.cp.settings.campaign_prices
        # The call's real usage: its agent reports it with the outcome, which settling waits for.
        usage = await (await self.cp.repository()).get_usage(call.org_id, call.id) or UsageFigures()

        def decide_for(contact: ContactRow, config: CampaignConfig, campaign_status: str) -> Any:
            outcome, success = classify(call, config)
            decision = decide(outcome, success, contact.attempts, config, campaign_status, now)
            prices = config.cost_rates.price_table() if config.cost_rates is not None else default_prices
            lines = call_cost(prices, answered_at=call.answered_at, ended_at=call.ended_at,
                              telnyx_cost=call.cost_amount, usage=usage)
            return decision, lines.total

        applied = await store.apply_outcome(call, now, decide_for)
        if applied is not None:
            self.notify(applied.campaign_id)
        return applied


class CampaignRunner:
    """Dials one campaign from this process, and looks after its contacts that are mid-call."""

    def __init__(self, dialer: Dialer, campaign_id: UUID) -> None:
        self.dialer = dialer
        self.campaign_id = campaign_id
        self.wake = asyncio.Event()
        self._next_sweep = 0.0
        self._window: tuple[Any, Window | None] | None = None
        self._campaign: DialCampaign | None = None
        self._campaign_fresh_until = 0.0
        self._lease_safe_until = 0.0  # until then the current claim's lease needs no renewal

    @property
    def cp(self) -> ControlPlane:
        return self.dialer.cp

    @property
    def settings(self) -> Any:
        return self.dialer.settings

    @property
    def send_lease_s(self) -> float:
        """The lease before a send: it outlasts the send (``dial_timeout_s``), so no worker re-sends an attempt
        whose request is still in flight; only a worker that died or stalled loses it."""
        return max(self.settings.lease_s, self.settings.dial_timeout_s + 1.0)

    async def _sleep(self, seconds: float) -> None:
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)

    async def run(self) -> None:
        while True:
            try:
                state = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign %s: dialer step failed", self.campaign_id)
                state = "idle"
            if state == "done":
                return
            if state == "idle":
                await self._sleep(self.settings.poll_interval_s)
            elif state == "full":
                await self._sleep(self.settings.capacity_poll_s)

    async def step(self, *, sweep: bool | None = None) -> str:
        """One round: maybe a sweep, then claim and dial at most one contact.

        Returns ``worked``, ``idle`` (nothing due), ``full`` (at a cap) or ``done`` (nothing left here).
        """
        store = await self.dialer.store()
        loop = asyncio.get_running_loop()
        campaign = self._campaign
        if campaign is None or loop.time() >= self._campaign_fresh_until or campaign.status != "running" or sweep:
            # Re-read now and then (status changes); the commit checks the status under lock anyway.
            campaign = self._campaign = await store.get(None, self.campaign_id)
            self._campaign_fresh_until = loop.time() + self.settings.poll_interval_s
        if campaign is None or campaign.config is None:
            return "done"
        if sweep or (sweep is None and loop.time() >= self._next_sweep):
            self._next_sweep = loop.time() + self.settings.sweep_interval_s
            busy = await self.sweep(campaign)
            if campaign.status != "running":
                return "idle" if busy else "done"
        if campaign.status != "running":
            return "idle"
        if await store.live_calls(campaign.id) >= campaign.config.max_concurrent_calls:
            return "full"
        now = self.dialer.clock()
        contact = await store.claim_due(campaign.id, self.dialer.worker_id, self.settings.lease_s, now)
        self._lease_safe_until = loop.time() + self.settings.lease_s / 2
        if contact is None:
            if await store.maybe_complete(campaign.id):
                self.dialer.cp.metrics.campaigns_completed.inc()
                log.info("campaign %s completed", campaign.id)
                return "done"
            return "idle"
        return await self._dial_claimed(campaign, contact)

    # -- a fresh claim ---------------------------------------------------------------------------

    def _calling_window(self, config: CampaignConfig) -> Window | None:
        if config.window is None:
            return None
        if self._window is None or self._window[0] is not config.window:
            w = config.window
            self._window = (config.window, Window(w.start, w.end, w.days))
        return self._window[1]

    def _next_open(self, config: CampaignConfig, contact: ContactRow, now: datetime) -> datetime | None:
        window = self._calling_window(config)
        if window is None:
            return now
        assert config.window is not None
        explicit = (contact.data or {}).get("timezone")
        zones = []
        for name in contact_zones(contact.phone, explicit, config.window.timezone):
            try:
                zones.append(zone(name))
            except UnknownTimeZone:
                zones.append(zone(config.window.timezone))
        return window.next_open_in_all(now, zones)

    async def _dial_claimed(self, campaign: DialCampaign, contact: ContactRow) -> str:
        try:
            return await self._check_pace_commit(campaign, contact)
        except asyncio.CancelledError:
            # Stopping: hand the claim back now rather than when its lease runs out (a no-op once committed).
            with contextlib.suppress(Exception):
                await (await self.dialer.store()).release(contact, self.dialer.clock())
            raise

    async def _check_pace_commit(self, campaign: DialCampaign, contact: ContactRow) -> str:
        store = await self.dialer.store()
        repo = store.repo
        config = campaign.config
        assert config is not None
        now = self.dialer.clock()
        if contact.phone is None:
            await store.finish_claimed(contact, now, "failed", "no_number")
            return "worked"
        if await repo.get_dnc(campaign.org_id, contact.phone) is not None:
            await store.finish_claimed(contact, now, "dnc_skipped", "dnc")
            return "worked"
        opens = self._next_open(config, contact, now)
        if opens is None:
            await store.finish_claimed(contact, now, "failed", "no_calling_window")
            return "worked"
        if opens > now:
            await store.release(contact, now, status="outside_window", next_attempt_at=opens)
            return "worked"
        wait = await self.dialer.pacer.reserve(f"campaign:{campaign.id}", config.calls_per_minute,
                                               burst=pacing_burst(config.calls_per_minute))
        if wait > 0 and not await self._hold(contact, "claimed", wait):
            return "worked"
        limit = self.cp.settings.api.call_starts_per_minute
        while True:
            decision = await self.cp.rate_limiter.hit(f"call_starts:{campaign.org_id}", limit, RATE_WINDOW_S)
            if decision.allowed:
                break
            if not await self._hold(contact, "claimed", max(0.05, decision.retry_after_s)):
                return "worked"
        now = self.dialer.clock()
        opens = self._next_open(config, contact, now)  # again: the waits may have crossed the closing time
        if opens is None or opens > now:
            await store.release(contact, now, status="outside_window", next_attempt_at=opens or now)
            return "worked"
        agent_config = call_agent_config(campaign, contact)

        def make_call(call_id: UUID, from_number: str, attempt: int) -> Call:
            return Call(
                id=call_id, org_id=campaign.org_id, direction="outbound", to_number=contact.phone,
                from_number=from_number, status="queued",
                status_history=(StatusChange(status="queued", at=now, reason=f"campaign:attempt {attempt}"),),
                campaign_id=campaign.id, agent_config=agent_config, created_at=now, updated_at=now,
            )

        commit = await store.commit_dial(campaign, contact, now, self.send_lease_s, make_call)
        if commit.result == "committed":
            assert commit.call is not None
            self.dialer.spawn(self.dial(campaign, contact, commit.call))
            return "worked"
        if commit.result in ("at_capacity", "numbers_busy", "not_running"):
            await store.release(contact, self.dialer.clock())
            if commit.result == "not_running":
                self._campaign = None  # paused or cancelled meanwhile: read it again
                return "idle"
            return "full"
        return "worked"  # lost: another worker has it

    async def _hold(self, contact: ContactRow, status: str, seconds: float) -> bool:
        """Wait while keeping the lease; False when the row was taken over meanwhile."""
        store = await self.dialer.store()
        lease = self.settings.lease_s
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            left = end - loop.time()
            if left <= 0:
                return True
            if loop.time() + left > self._lease_safe_until:  # the wait would eat into the lease: extend it
                now = self.dialer.clock()
                if not await store.renew(contact, status, now + timedelta(seconds=lease + left), now):
                    return False
                self._lease_safe_until = loop.time() + left + lease / 2
            await asyncio.sleep(min(left, lease / 3))

    # -- the dial ----------------------------------------------------------------------------------

    async def dial(self, campaign: DialCampaign, contact: ContactRow, call: Call, *, first_send: bool = True) -> None:
        """Send the attempt's dial (its call id as command_id) and record what Telnyx said.

        ``first_send``: no earlier request for this attempt can have reached Telnyx. Only then may a
        refusal that Telnyx did not execute (429) clear ``dial_started_at``; a refused *re-send* says
        nothing about the first request, whose de-duplication window keeps running.
        """
        cp = self.cp
        store = await self.dialer.store()
        repo = store.repo
        config = campaign.config
        assert config is not None and contact.phone is not None
        settings = cp.settings
        try:
            client = self.dialer.telnyx_client()
            stream, webhook_url = stream_target(cp, call.id), cp.webhook_url()
            agent = effective_agent(settings.agent, call.agent_config)
        except Exception as exc:  # not configured: try again once the lease runs out
            await store.dial_later(contact, call.id, self.dialer.clock(), self.settings.lease_s,
                                   f"not configured: {exc}", not_sent=first_send)
            return
        metrics = cp.metrics
        metrics.dial_sent("campaign")
        try:
            async with asyncio.timeout(self.settings.dial_timeout_s):  # inside the send's lease
                result = await client.dial(
                    connection_id=settings.telnyx_connection_id or "", to=contact.phone, from_=call.from_number or "",
                    # With machine detection the agent waits for the verdict (control_plane.machines).
                    stream_url=None if holds_agent(config.amd_mode) else stream.url, stream_track="inbound_track",
                    stream_bidirectional_mode="rtp",
                    stream_bidirectional_codec="PCMU", stream_auth_token=stream.auth_token,
                    client_state=client_state_for(call.id), webhook_url=webhook_url, command_id=str(call.id),
                    timeout_secs=config.ring_timeout_s, answering_machine_detection=config.amd_mode,
                    time_limit_secs=agent.max_duration_s,
                )
        except TelnyxRateLimited as exc:
            metrics.dial_failed("campaign", "rate_limited")
            # A 429 after an unanswered try of this send: that try may have dialled; its window runs on.
            await store.dial_later(contact, call.id, self.dialer.clock(), max(1.0, exc.retry_after_s or 1.0),
                                   str(exc), not_sent=first_send and not exc.after_unanswered)
            return
        except TelnyxApiError as exc:
            metrics.dial_failed("campaign", "server_error" if exc.status >= 500 else "refused")
            if exc.status >= 500 or exc.after_unanswered:
                # Fate unknown (after an unanswered try, this may answer a duplicate of a dial that ran).
                await store.dial_later(contact, call.id, self.dialer.clock(), 1.0, str(exc), not_sent=False)
                return
            at, error = self.dialer.clock(), telnyx_error_details(exc)
            ended = await repo.update_call(call.id, lambda c: failed(c, error, at, "dial_error"))
            if ended is not None:
                await self.dialer.settle(ended)
            return
        except (TelnyxError, TimeoutError) as exc:
            # No answer from Telnyx: it may or may not have dialled. Re-sent soon with the same command_id.
            metrics.dial_failed("campaign", "unreachable")
            await store.dial_later(contact, call.id, self.dialer.clock(), 1.0, str(exc) or "no answer in time",
                                   not_sent=False)
            return

        updated = await repo.update_call(call.id, lambda c: dialled(c, result))
        await store.mark_dialled(contact.id, call.id, self.dialer.clock())
        if updated is not None:
            lifecycle.started(metrics, updated, "campaign")
        if updated is not None and updated.terminal:
            await self.dialer.settle(updated)

    # -- maintenance -------------------------------------------------------------------------------

    async def sweep(self, campaign: DialCampaign) -> bool:
        """Take over expired leases, settle missed outcomes, check silent calls, settle success.
        Returns whether contacts of this campaign are still mid-call (or unsettled)."""
        store = await self.dialer.store()
        repo = store.repo
        now = self.dialer.clock()
        for contact in await store.claim_expired(campaign.id, self.dialer.worker_id, self.settings.lease_s, now):
            try:
                if contact.status == "claimed":
                    await store.release(contact, now)
                else:
                    await self.recover(campaign, contact)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign %s: recovering contact %s failed", campaign.id, contact.id)
        for call_id in await store.unsettled_calls(campaign.id):
            call = await repo.get_call_unscoped(call_id)
            if call is not None:
                await self.dialer.settle(call)
        await check_stale(self.dialer, campaign)
        await self._settle_success(campaign)
        return await store.has_unfinished(campaign.id)

    async def recover(self, campaign: DialCampaign, contact: ContactRow) -> None:
        """A ``dialing`` row taken over from a worker that went quiet: finish its attempt, never twice."""
        store = await self.dialer.store()
        repo = store.repo
        settings = self.settings
        if contact.last_call_id is None:
            await store.release(contact, self.dialer.clock())
            return
        call = await repo.get_call_unscoped(contact.last_call_id)
        if call is None:
            log.error("campaign %s: contact %s lost its call row", campaign.id, contact.id)
            return
        if call.terminal:
            await self.dialer.settle(call)
            return
        now = self.dialer.clock()
        if call.call_control_id is not None or call.status != "queued":
            await store.mark_dialled(contact.id, call.id, now)  # it was dialled: webhooks or the response say so
            return
        started = contact.dial_started_at
        # The first send's age on the clock it was stamped on (store.shared_now), not this worker's:
        # a worker whose clock runs behind would otherwise re-send past Telnyx's window.
        shared_now = await store.shared_now()
        age_s = (shared_now - started).total_seconds() if started is not None else 0.0
        if started is None or age_s < settings.dedupe_window_s - settings.resend_margin_s:
            # Never sent, or Telnyx still de-duplicates this command_id: sending it (again) dials at most once.
            if await store.renew(contact, "dialing", now + timedelta(seconds=self.send_lease_s), now,
                                 dial_started_at=shared_now):
                fresh = contact.model_copy(update={"dial_started_at": started or shared_now})
                self.dialer.spawn(self.dial(campaign, fresh, call, first_send=started is None))
            return
        left_s = settings.dedupe_window_s + settings.unconfirmed_grace_s - age_s
        if left_s > 0:
            await store.renew(contact, "dialing", now + timedelta(seconds=min(left_s, settings.lease_s)), now)
            return
        error = {"code": UNCONFIRMED, "message": "the dial may have been sent but its result was never "
                 "recorded, and Telnyx no longer de-duplicates it: not dialled again"}
        ended = await repo.update_call(call.id, lambda c: failed(c, error, now, "dial_unconfirmed"))
        if ended is not None:
            await self.dialer.settle(ended)

    async def _settle_success(self, campaign: DialCampaign) -> None:
        """Answered calls whose agent outcome had not arrived when they ended: take it now, or, after
        ``outcome_grace_s`` without one, count the answered call as a success."""
        store = await self.dialer.store()
        config = campaign.config
        assert config is not None
        now = self.dialer.clock()
        grace = timedelta(seconds=self.settings.outcome_grace_s)
        for contact_id, call_id, _ in await store.unscored(campaign.id, now - grace):
            call = await store.repo.get_call_unscoped(call_id) if call_id else None
            success = agent_success(call.outcome if call else None, config)
            await store.settle_success(contact_id, True if success is None else success)

