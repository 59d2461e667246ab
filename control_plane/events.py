"""Telnyx webhooks: verified, stored durably, acknowledged, then processed by a worker.

``POST /webhook/telnyx``: signature (Ed25519, ``telnyx_public_key``) and freshness are
checked first; a failure is a 401 and nothing is written. The event row is inserted
(idempotent on Telnyx's event id: a redelivery is acknowledged and changes nothing), then
the signed request is claimed against replays (a replay is a 401 that changed nothing),
and only then is 200 returned, so an acknowledged event is never lost, and an event whose
insert failed is accepted when it comes again. :class:`EventWorker` drains unprocessed
rows, at start-up too, claiming them with a lease, so a crash between the acknowledgement and
the processing only delays it. Processing is the pure state machine in
:mod:`control_plane.callstate` plus a few idempotent Telnyx commands (answering inbound
calls, starting recordings, hanging up orphans), each with a stable ``command_id``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from aiohttp import web

from . import lifecycle
from .background import SingleTask, run_rounds
from .calls import command_id, telnyx_error_details
from .callstate import apply_event, call_id_from_client_state, client_state_for, failed
from .context import control_plane
from .errors import ApiError, json_response, read_body
from .jsonutil import has_nul
from .phone import InvalidPhoneNumber, normalize_e164
from .store import Call, Conflict, StatusChange, StoredEvent, utcnow
from .streamauth import stream_target
from .telnyx.client import TelnyxApiError
from .telnyx.webhooks import WebhookParseError, WebhookVerificationError, parse_event, verify_signature

if TYPE_CHECKING:
    from .services import ControlPlane

log = logging.getLogger(__name__)

BATCH = 50


def phone_hash_of(cp: ControlPlane, value: Any) -> str | None:
    """Hash of a number as it appears in a payload (normalised when it is E.164)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        value = normalize_e164(value)
    except InvalidPhoneNumber:
        pass
    return cp.keys.hasher.phone(value)


async def receive_webhook(request: web.Request) -> web.Response:
    cp = control_plane(request)
    settings = cp.settings
    public_key = settings.telnyx_public_key
    if not public_key:
        raise ApiError(503, "not_configured", "webhooks cannot be verified: set TELNYX_PUBLIC_KEY")
    raw = await read_body(request)
    try:
        verify_signature(raw, request.headers, public_key, tolerance_s=settings.webhooks.tolerance_s)
    except WebhookVerificationError as exc:
        raise ApiError(401, "invalid_signature", f"webhook rejected: {exc.reason}") from None
    try:
        event = parse_event(raw)
    except WebhookParseError as exc:
        raise ApiError(400, "invalid_webhook", str(exc)) from None
    payload = redact_dtmf(event.event_type, event.payload)
    occurred_at = event.occurred_at
    try:
        occurred_at = (occurred_at.replace(tzinfo=UTC) if occurred_at.tzinfo is None
                       else occurred_at.astimezone(UTC))
    except OverflowError:
        raise ApiError(400, "invalid_webhook", "occurred_at is out of range") from None
    if has_nul(event.id) or has_nul(event.event_type) or len(event.id) > 200 or len(event.event_type) > 200:
        raise ApiError(400, "invalid_webhook", "event id or type is not a plain short string")
    control_id = payload.get("call_control_id")
    stored = StoredEvent(
        event_id=event.id, event_type=event.event_type, occurred_at=occurred_at,
        call_control_id=control_id if isinstance(control_id, str) and not has_nul(control_id) else None,
        payload=payload, from_hash=phone_hash_of(cp, payload.get("from")), to_hash=phone_hash_of(cp, payload.get("to")),
        received_at=utcnow(),
    )
    repo = await cp.repository()
    inserted = await repo.insert_event(stored)
    if inserted:
        cp.worker.notify()
        # Telnyx's clock to ours: delivery delay (plus skew, bounded by the signature's tolerance).
        cp.metrics.webhook_ingest_lag.observe(max(0.0, (stored.received_at - occurred_at).total_seconds()))
    cp.metrics.webhooks.labels("false" if inserted else "true").inc()
    # Claimed only now: had the insert failed (500), Telnyx's redelivery of this very request
    # must be stored, not refused as a replay. A replay reaching this point changed nothing
    # (the insert is idempotent on the event id) and is still refused.
    if not await cp.replay_guard.first_seen(request.headers):
        raise ApiError(401, "replayed", "webhook rejected: this exact request was already received")
    return json_response({"received": True, "duplicate": not inserted})


async def wants_recording(cp: ControlPlane, call: Call) -> bool:
    """``agent_config.record`` when set, else the organisation's ``record_calls`` setting."""
    choice = call.agent_config.get("record")
    if isinstance(choice, bool):
        return choice
    org = await (await cp.repository()).get_organisation(call.org_id)
    return bool(org and org.settings.get("record_calls"))


def redact_dtmf(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Keypad digits are never stored (they may be card numbers: PCI DSS). The media stream
    still delivers DTMF to the conversation pipeline in-band."""
    if event_type == "call.dtmf.received" and "digit" in payload:
        return {**payload, "digit": "redacted"}
    if event_type == "call.gather.ended" and "digits" in payload:
        digits = payload["digits"]
        return {**payload, "digits": "redacted", "digit_count": len(digits) if isinstance(digits, str) else None}
    return payload


class EventWorker:
    """Drains unprocessed webhook rows: woken on insert, and every ``poll_interval_s``."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self._task = SingleTask("callagent-event-worker", self._run)
        self._wake = asyncio.Event()
        self._draining = asyncio.Lock()
        self.processor = EventProcessor(cp)

    def start(self) -> None:
        self._task.start()

    def notify(self) -> None:
        self._wake.set()
        self.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        interval = self.cp.settings.webhooks.poll_interval_s

        async def round_() -> None:
            self._wake.clear()
            await self.drain()

        async def pause() -> None:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass

        await run_rounds(round_, pause, what="webhook worker: draining", interval_s=interval, log=log)

    async def drain(self) -> int:
        """Process every claimable event; returns how many were handled.

        One drain at a time per process: when it returns, everything this process had
        claimed is processed (or scheduled for a retry).
        """
        repo = await self.cp.repository()
        settings = self.cp.settings.webhooks
        handled = 0
        async with self._draining:
            while True:
                events = await repo.claim_events(limit=BATCH, lease_s=settings.claim_lease_s)
                if not events:
                    return handled
                for event in events:
                    await self._process_one(event)
                    handled += 1

    async def _process_one(self, event: StoredEvent) -> None:
        repo = await self.cp.repository()
        settings = self.cp.settings.webhooks
        try:
            org_id, call_id = await self.processor.process(event)
        except asyncio.CancelledError:
            raise
        except Unrouted as exc:
            # Deliberately turned away (an inbound call to a number no organisation registered):
            # done, with the reason kept on the stored event for the operator.
            await repo.complete_event(event.event_id, org_id=None, call_id=None, error=exc.reason)
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            if event.attempts >= settings.max_attempts:
                log.error("webhook %s (%s) failed %d times, parked: %s", event.event_id, event.event_type,
                          event.attempts, error)
                await repo.complete_event(event.event_id, org_id=None, call_id=None, error=error)
            else:
                delay = min(300.0, 2.0 ** event.attempts)
                log.warning("webhook %s (%s) failed, retry in %.0f s: %s", event.event_id, event.event_type,
                            delay, error)
                await repo.retry_event(event.event_id, error=error, retry_in_s=delay,
                                       lease_s=settings.claim_lease_s)
            return
        await repo.complete_event(event.event_id, org_id=org_id, call_id=call_id)
        self.cp.metrics.webhook_processing_lag.observe(max(0.0, (utcnow() - event.received_at).total_seconds()))


def _same_leg(call: Call, event: StoredEvent) -> bool:
    """Whether an event found through its client_state is about this call's own leg: a
    client_state copied onto another leg (transfer) must not capture that leg. Events
    without a call_control_id (``call.recording.saved`` in the SDK's model) are checked by
    their call_leg_id instead."""
    if event.call_control_id is not None:
        return call.call_control_id is None or call.call_control_id == event.call_control_id
    leg = event.payload.get("call_leg_id")
    return isinstance(leg, str) and call.call_leg_id is not None and call.call_leg_id == leg


CallListener = Callable[[StoredEvent, Call, Call], Awaitable[None]]
"""Called with (event, call before, call after) once an event has been applied to its call row."""


class Unrouted(Exception):
    """An event that reaches no organisation and was answered for (an inbound call rejected)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventProcessor:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.listeners: list[CallListener] = []  # e.g. the campaigns module settling its contacts

    async def _find_call(self, event: StoredEvent) -> Call | None:
        repo = await self.cp.repository()
        if event.call_control_id:
            call = await repo.find_call_by_control_id(event.call_control_id)
            if call is not None:
                return call
        call_id = call_id_from_client_state(event.payload.get("client_state"))
        if call_id is not None:
            call = await repo.get_call_unscoped(call_id)
            if call is not None and _same_leg(call, event):
                return call
        leg = event.payload.get("call_leg_id")
        if event.call_control_id is None and isinstance(leg, str) and leg:
            # No call_control_id (call.recording.saved as the SDK has it) and no client_state of
            # ours (a recording started from the portal or another app): the leg is the call.
            return await repo.find_call_by_leg_id(leg)
        return None

    async def process(self, event: StoredEvent) -> tuple[UUID | None, UUID | None]:
        repo = await self.cp.repository()
        call = await self._find_call(event)
        if call is None and event.event_type == "call.initiated" and event.payload.get("direction") == "incoming":
            call = await self._create_inbound(event)
            if call is None:
                await self._reject_unrouted(event)
            else:
                lifecycle.started(self.cp.metrics, call, "inbound")
        if call is None:
            return None, None  # stored for the record; nothing of ours
        at = event.occurred_at or event.received_at
        before = call
        after = await repo.update_call(call.id, lambda c: apply_event(c, event.event_type, event.payload, at))
        assert after is not None
        lifecycle.status_changed(self.cp.metrics, before, after)
        await self._side_effects(event, before, after)
        for listener in self.listeners:
            await listener(event, before, after)
        return after.org_id, after.id

    async def _create_inbound(self, event: StoredEvent) -> Call | None:
        repo = await self.cp.repository()
        to = event.payload.get("to")
        if not isinstance(to, str) or not event.call_control_id:
            return None
        try:
            number = await repo.find_phone_number(normalize_e164(to))
        except InvalidPhoneNumber:
            return None
        if number is None:
            return None
        caller = event.payload.get("from")
        caller = caller if isinstance(caller, str) and caller else "unknown"
        try:
            caller = normalize_e164(caller)
        except InvalidPhoneNumber:
            pass
        at = event.occurred_at or event.received_at
        try:
            return await repo.create_call(Call(
                id=uuid4(), org_id=number.org_id, direction="inbound", to_number=number.number, from_number=caller,
                status="initiated", status_history=(StatusChange(status="initiated", at=at, reason=event.event_type),),
                call_control_id=event.call_control_id, agent_config=number.agent_config,
                created_at=utcnow(), updated_at=utcnow(),
            ))
        except Conflict:
            return await repo.find_call_by_control_id(event.call_control_id)

    async def _reject_unrouted(self, event: StoredEvent) -> None:
        """An inbound call to a number no organisation registered: reject it rather than leave the
        caller ringing, and say why. (The dialled number is the line's own, not personal data.)"""
        ccid = event.call_control_id
        if not ccid:
            return
        to = event.payload.get("to")
        shown = to if isinstance(to, str) and len(to) <= 32 and to.lstrip("+").isdigit() else "an unknown number"
        reason = f"rejected: {shown} is not registered to any organisation (callagent number add)"
        log.warning("inbound call %s to %s rejected: the number is not registered (callagent number add / "
                    "POST /api/numbers)", event.event_id, shown)
        try:
            await self.cp.telnyx_client().reject(ccid, cause="CALL_REJECTED", command_id=command_id(ccid, "reject"))
        except TelnyxApiError as exc:
            if exc.status != 422:  # 422: the caller hung up already; nothing left to reject
                raise
        raise Unrouted(reason)

    async def _side_effects(self, event: StoredEvent, before: Call, call: Call) -> None:
        cp = self.cp
        ccid = call.call_control_id
        if not ccid:
            return
        kind = event.event_type
        try:
            if kind == "call.initiated" and call.direction == "inbound" and call.status == "initiated":
                await self._answer(call)
            elif kind == "call.answered":
                if call.terminal and before.terminal and call.hangup_cause is None:
                    # We gave up on this call (dial error, cancelled) but it was answered: end it.
                    await cp.telnyx_client().hangup(ccid, command_id=command_id(call.id, "hangup"))
                elif not call.terminal and not call.recording_id and await self._wants_recording(call):
                    # Our client_state on the command: call.recording.saved has no call_control_id
                    # in the SDK's model, so it is matched by client_state and call_leg_id.
                    await cp.telnyx_client().record_start(
                        ccid, format="mp3", channels="dual", client_state=client_state_for(call.id),
                        command_id=command_id(call.id, "record_start"))
            elif kind in ("streaming.stopped", "streaming.failed") and not call.terminal:
                if cp.settings.streams.recovery:
                    cp.recovery.notify()  # a live call without its stream: the recovery sweep re-attaches it
                elif kind == "streaming.failed":
                    log.warning("media stream failed for call %s; hanging up", call.id)
                    await cp.telnyx_client().hangup(ccid, command_id=command_id(call.id, "hangup"))
        except TelnyxApiError as exc:
            if exc.status == 422:
                # The call is gone or the command no longer applies: nothing to retry.
                log.info("call %s: %s after %s: %s", call.id, "command refused", kind, exc)
                if kind == "call.initiated" and call.direction == "inbound":
                    await self._mark_failed(call, exc)
                return
            raise

    async def _wants_recording(self, call: Call) -> bool:
        return await wants_recording(self.cp, call)

    async def _answer(self, call: Call) -> None:
        cp = self.cp
        assert call.call_control_id
        # The SDK's answer has no stream_auth_token: the credential rides in the URL only.
        await cp.telnyx_client().answer(
            call.call_control_id, stream_url=stream_target(cp, call.id).url, stream_track="inbound_track",
            stream_bidirectional_mode="rtp", stream_bidirectional_codec="PCMU", client_state=client_state_for(call.id),
            webhook_url=cp.webhook_url(), command_id=command_id(call.id, "answer"),
        )

    async def _mark_failed(self, call: Call, exc: Exception) -> None:
        repo = await self.cp.repository()
        at, error = utcnow(), telnyx_error_details(exc)
        await repo.update_call(call.id, lambda c: failed(c, error, at, "answer_error"))
