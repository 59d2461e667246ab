"""Starting and hanging up calls: the one path every dial takes (API now, campaign dialer later).

Order of a start: configuration and agent checks, per-organisation rate limit,
do-not-call list, campaign check, *then* the call row is written (status ``queued``) and only then
Telnyx is dialled, with the call id as ``command_id`` (Telnyx ignores a repeated dial)
and inside ``client_state`` (so webhooks that beat the dial response still find the
row). A failed dial marks the row ``failed`` with Telnyx's error and raises it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import orjson

from . import lifecycle
from .agents import check_agent, org_tool_destinations
from .callstate import client_state_for, dialled, failed
from .errors import ApiError
from .knowledge.service import KnowledgeError
from .store import Call, Conflict, Organisation, StatusChange, utcnow
from .streamauth import stream_target
from .telnyx.client import TelnyxApiError, TelnyxError, TelnyxRateLimited
from .voicemail import holds_agent

if TYPE_CHECKING:
    from .services import ControlPlane

log = logging.getLogger(__name__)

_COMMAND_NS = uuid5(NAMESPACE_URL, "https://github.com/callagent/command-id")
RATE_WINDOW_S = 60.0


def command_id(call_id: UUID | str, action: str) -> str:
    """A stable command id per (call, action): retries and duplicate webhooks repeat it, Telnyx ignores it.
    ``call_id`` is our call's id, or Telnyx's call_control_id for a call we keep no row of."""
    return str(uuid5(_COMMAND_NS, f"{call_id}:{action}"))


@dataclass(frozen=True, slots=True)
class DialRequest:
    to: str
    from_: str
    agent_config: dict
    campaign_id: UUID | None = None
    ring_timeout_s: int | None = None
    answering_machine_detection: str | None = None


IDEMPOTENCY_IN_FLIGHT = timedelta(seconds=60)
"""A keyed start still queued this long after it began is reported as it stands, not as in flight:
the process that was dialing may have died (the dial itself is bounded far below this)."""


@dataclass(frozen=True, slots=True)
class StartedCall:
    call: Call
    replayed: bool
    """An earlier request with the same ``Idempotency-Key`` placed this call: nothing was dialed now."""


def request_canonical(request: DialRequest) -> bytes:
    """The start request as the bytes its fingerprint is taken over (key order fixed)."""
    return orjson.dumps({
        "to": request.to, "from": request.from_, "agent_config": request.agent_config,
        "campaign_id": str(request.campaign_id) if request.campaign_id else None,
        "ring_timeout_s": request.ring_timeout_s, "answering_machine_detection": request.answering_machine_detection,
    }, option=orjson.OPT_SORT_KEYS)


def telnyx_error_details(exc: Exception) -> dict:
    return {
        "telnyx_status": getattr(exc, "status", None),
        "telnyx_code": getattr(exc, "code", None),
        "errors": getattr(exc, "errors", None) or [],
        "message": str(exc),
    }


class CallService:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    async def ensure_dialable(self, org_id: UUID, to: str) -> None:
        """Raise 409 when ``to`` is on the organisation's do-not-call list."""
        repo = await self.cp.repository()
        if await repo.get_dnc(org_id, to) is not None:
            raise ApiError(409, "dnc_blocked", "the number is on this organisation's do-not-call list")

    async def start_call(self, org: Organisation, request: DialRequest, *,
                         idempotency_key: str | None = None) -> StartedCall:
        """Record the call, then dial it. With an ``idempotency_key`` a retried request gets the
        call the first one placed (or 409 while that one is still dialing) and never a second dial."""
        cp = self.cp
        cp.refuse_new_calls()
        settings = cp.settings
        client = cp.telnyx_client()
        if not settings.telnyx_connection_id:
            raise ApiError(503, "not_configured", "Telnyx is not configured (set TELNYX_CONNECTION_ID)")
        repo = await cp.repository()
        key_hash = fingerprint = None
        if idempotency_key is not None:
            key_hash = repo.hash_idempotency_key(idempotency_key)
            fingerprint = repo.hash_request(request_canonical(request))
            earlier = await repo.get_call_by_idempotency_key(org.id, key_hash)
            if earlier is not None:
                return StartedCall(_replayed(earlier, fingerprint), replayed=True)
        cp.stream_url()  # configured? (checked before anything is written)
        webhook_url = cp.webhook_url()
        agent = check_agent(settings, request.agent_config, org_tool_destinations(org))
        if agent.knowledge_bases:  # another organisation's (or a deleted) base is refused, not ignored
            try:
                await cp.knowledge.resolve(repo, org.id, agent.knowledge_bases)
            except KnowledgeError as exc:
                raise ApiError(422, "unknown_knowledge_base", str(exc)) from None

        limit = settings.api.call_starts_per_minute
        decision = await cp.rate_limiter.hit(f"call_starts:{org.id}", limit, RATE_WINDOW_S)
        if not decision.allowed:
            raise ApiError(429, "rate_limited", f"more than {limit} call starts in a minute",
                           {"limit": limit, "window_s": RATE_WINDOW_S, "retry_after_s": decision.retry_after_s},
                           headers={"Retry-After": decision.retry_after_header})

        await self.ensure_dialable(org.id, request.to)
        if (request.campaign_id is not None
                and await (await cp.campaigns.store()).get(org.id, request.campaign_id) is None):
            raise ApiError(422, "unknown_campaign", "campaign_id does not name a campaign of this organisation")

        now = utcnow()
        try:
            call = await repo.create_call(Call(
                id=uuid4(), org_id=org.id, direction="outbound", to_number=request.to, from_number=request.from_,
                status="queued", status_history=(StatusChange(status="queued", at=now, reason="api"),),
                campaign_id=request.campaign_id, agent_config=request.agent_config, created_at=now, updated_at=now,
                idempotency_key_hash=key_hash, request_fingerprint=fingerprint,
            ))
        except Conflict:
            # The same key in a request running alongside this one: it created the row first.
            earlier = await repo.get_call_by_idempotency_key(org.id, key_hash) if key_hash else None
            if earlier is None:
                raise
            return StartedCall(_replayed(earlier, fingerprint), replayed=True)
        stream = stream_target(cp, call.id)
        # With machine detection the agent waits for the verdict: the stream starts on a person (.machines).
        held = holds_agent(request.answering_machine_detection)
        metrics = cp.metrics
        metrics.dial_sent("api")
        try:
            result = await client.dial(
                connection_id=settings.telnyx_connection_id, to=request.to, from_=request.from_,
                stream_url=None if held else stream.url, stream_track="inbound_track", stream_bidirectional_mode="rtp",
                stream_bidirectional_codec="PCMU", stream_auth_token=stream.auth_token,
                client_state=client_state_for(call.id), webhook_url=webhook_url, command_id=str(call.id),
                timeout_secs=request.ring_timeout_s,
                answering_machine_detection=request.answering_machine_detection,
                time_limit_secs=agent.max_duration_s,
            )
        except TelnyxRateLimited as exc:
            metrics.dial_failed("api", "rate_limited")
            await self._dial_failed(call.id, telnyx_error_details(exc))
            retry = exc.retry_after_s
            raise ApiError(503, "telnyx_rate_limited", "Telnyx is rate limiting dials; try again later",
                           {"call_id": str(call.id), **telnyx_error_details(exc)},
                           headers={"Retry-After": str(max(1, int(retry or 1)))}) from None
        except TelnyxApiError as exc:
            metrics.dial_failed("api", "server_error" if exc.status >= 500 else "refused")
            await self._dial_failed(call.id, telnyx_error_details(exc))
            status = 422 if exc.status == 422 else 502
            raise ApiError(status, "telnyx_error", f"Telnyx refused the dial: {exc.title or exc}",
                           {"call_id": str(call.id), **telnyx_error_details(exc)}) from None
        except TelnyxError as exc:
            metrics.dial_failed("api", "unreachable")
            await self._dial_failed(call.id, telnyx_error_details(exc))
            raise ApiError(502, "telnyx_unreachable", "Telnyx did not answer the dial",
                           {"call_id": str(call.id), **telnyx_error_details(exc)}) from None

        updated = await repo.update_call(call.id, lambda c: dialled(c, result))
        assert updated is not None
        lifecycle.started(metrics, updated, "api")
        if updated.hangup_requested_at is not None and not updated.terminal:
            # Hung up through the API while the dial was in flight.
            try:
                await self._send_hangup(updated)
            except ApiError as exc:
                log.warning("call %s: hangup requested during the dial failed: %s", call.id, exc.message)
        return StartedCall(updated, replayed=False)

    async def _dial_failed(self, call_id: UUID, error: dict) -> None:
        repo = await self.cp.repository()
        at = utcnow()
        await repo.update_call(call_id, lambda c: failed(c, error, at, "dial_error"))

    async def hangup(self, org: Organisation, call_id: UUID) -> Call:
        repo = await self.cp.repository()
        call = await repo.get_call(org.id, call_id)
        if call is None:
            raise ApiError(404, "not_found", "no such call")
        if call.terminal:
            return call
        now = utcnow()
        call = await repo.update_call(call.id, lambda c: c if c.hangup_requested_at else
                                      c.model_copy(update={"hangup_requested_at": now})) or call
        if call.call_control_id is None:
            return call  # the dial has not returned yet: start_call hangs up as soon as it does
        await self._send_hangup(call)
        return call

    async def _send_hangup(self, call: Call) -> None:
        assert call.call_control_id
        try:
            await self.cp.telnyx_client().hangup(call.call_control_id, command_id=command_id(call.id, "hangup"))
        except TelnyxApiError as exc:
            raise ApiError(502, "telnyx_error", f"Telnyx refused the hangup: {exc.title or exc}",
                           telnyx_error_details(exc)) from None
        except TelnyxError as exc:
            raise ApiError(502, "telnyx_unreachable", "Telnyx did not answer the hangup",
                           telnyx_error_details(exc)) from None


def _replayed(earlier: Call, fingerprint: str | None) -> Call:
    """The call an earlier request with the same key placed, if this request is that one's retry."""
    if earlier.request_fingerprint != fingerprint:
        raise ApiError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used for a different request; use a new key for a new call",
                       {"call_id": str(earlier.id)})
    if earlier.call_control_id is None and earlier.status == "queued" and \
            utcnow() - earlier.created_at < IDEMPOTENCY_IN_FLIGHT:
        raise ApiError(409, "idempotency_key_in_flight",
                       "the request with this Idempotency-Key is still dialing; retry shortly",
                       {"call_id": str(earlier.id)}, headers={"Retry-After": "1"})
    return earlier
