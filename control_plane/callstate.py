"""The call state machine, as pure functions: a call and an event in, the updated call out.

Telnyx webhooks arrive out of order, twice, or for calls we never dialled, so every rule
here is monotonic:

* status only moves up ``queued < initiated < answered < final``; a final status
  (completed, failed, busy, no_answer, canceled) never changes again;
* timestamps fill in when first known (a late ``call.answered`` after ``call.hangup``
  still records ``answered_at``, without resurrecting the call);
* the final status from ``call.hangup`` uses what is known: an answered call, or a
  ``normal_clearing``/``time_limit`` cause, ended ``completed`` even if its
  ``call.answered`` has not arrived yet.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from .jsonutil import without_nul
from .store.records import STATUS_RANK, Call, StatusChange, utcnow

CLIENT_STATE_PREFIX = "callagent:v1:"

_STREAM_RANK = {None: 0, "started": 1, "stopped": 2, "failed": 3}


def client_state_for(call_id: UUID) -> str:
    """The raw ``client_state`` we give Telnyx (the client base64-encodes it)."""
    return f"{CLIENT_STATE_PREFIX}{call_id}"


def call_id_from_client_state(value: str | bytes | None) -> UUID | None:
    """Our call id from a ``client_state`` as Telnyx echoes it (base64) or already decoded."""
    if not isinstance(value, (str, bytes)):
        return None
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return None
    if not text.startswith(CLIENT_STATE_PREFIX):
        return None
    try:
        return UUID(text[len(CLIENT_STATE_PREFIX):])
    except ValueError:
        return None


def failed(call: Call, error: dict[str, Any], at: datetime, reason: str) -> Call:
    """Give up on a call we could not place or answer, keeping the carrier's error."""
    return advance(call.model_copy(update={"error": without_nul(error)}), "failed", at, reason)


def dialled(call: Call, result: Any) -> Call:
    """Record Telnyx's dial response (ids it assigned) and move the call to ``initiated``.
    Ids a webhook already filled in win: they cannot differ, and the webhook may be newer."""
    call = call.model_copy(update={
        "call_control_id": call.call_control_id or result.call_control_id,
        "call_leg_id": call.call_leg_id or result.call_leg_id,
        "call_session_id": call.call_session_id or result.call_session_id,
    })
    return advance(call, "initiated", utcnow(), "dial")


def advance(call: Call, status: str, at: datetime, reason: str) -> Call:
    """Move to ``status`` if it is further along; record the change in the history."""
    if STATUS_RANK[status] <= STATUS_RANK[call.status]:
        return call
    change = StatusChange(status=status, at=at, reason=reason)  # type: ignore[arg-type]
    # Status only moves forward, so appending keeps the history in status order.
    return call.model_copy(update={"status": status, "status_history": (*call.status_history, change)})


def final_status(call: Call, cause: str | None) -> str:
    if call.answered_at is not None or cause in ("normal_clearing", "time_limit"):
        return "completed"
    if cause in ("user_busy", "call_rejected"):
        return "busy"
    if cause in ("timeout", "no_answer"):
        return "no_answer"
    if cause == "originator_cancel":
        return "canceled"
    return "failed"


def _earliest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at < current else current


def _str(value: Any, limit: int = 256) -> str | None:
    """A string from a payload: NULs removed (PostgreSQL refuses them), length capped."""
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "")[:limit]
    return value or None


def apply_event(call: Call, event_type: str, payload: dict[str, Any], at: datetime) -> Call:
    """The call after one webhook. Unknown event types change nothing."""
    ids = {field: _str(payload.get(field)) for field in ("call_control_id", "call_leg_id", "call_session_id")
           if getattr(call, field) is None and _str(payload.get(field))}
    if ids:
        call = call.model_copy(update=ids)

    update: dict[str, Any] = {}
    if event_type == "call.initiated":
        return advance(call, "initiated", at, event_type)
    if event_type == "call.answered":
        call = call.model_copy(update={"answered_at": _earliest(call.answered_at, at)})
        return advance(call, "answered", at, event_type)
    if event_type == "call.hangup":
        cause = _str(payload.get("hangup_cause"))
        update.update(
            ended_at=_earliest(call.ended_at, at),
            hangup_cause=call.hangup_cause or cause,
            hangup_source=call.hangup_source or _str(payload.get("hangup_source")),
            sip_hangup_cause=call.sip_hangup_cause or _str(payload.get("sip_hangup_cause")),
        )
        if isinstance(payload.get("call_quality_stats"), dict):
            update["quality"] = without_nul(payload["call_quality_stats"])
        call = call.model_copy(update=update)
        return advance(call, final_status(call, cause), at, f"call.hangup:{cause or 'unknown'}")
    if event_type.startswith("streaming."):
        state = event_type.split(".", 1)[1]
        if state in _STREAM_RANK and _STREAM_RANK[state] > _STREAM_RANK.get(call.stream_state, 0):
            update["stream_state"] = state
    elif event_type == "call.recording.saved":
        urls = payload.get("recording_urls") or payload.get("public_recording_urls") or {}
        if isinstance(urls, dict):
            url = _str(urls.get("mp3"), 8192) or _str(urls.get("wav"), 8192)  # signed URLs are long
            if url:
                update["recording_url"] = url
        if _str(payload.get("recording_id")):
            update["recording_id"] = _str(payload["recording_id"])
    elif event_type in ("call.machine.detection.ended", "call.machine.premium.detection.ended"):
        if _str(payload.get("result")):
            update["amd_result"] = _str(payload["result"])
    elif event_type in ("call.machine.greeting.ended", "call.machine.premium.greeting.ended"):
        if _str(payload.get("result")):
            update["amd_result"] = f"{call.amd_result or 'machine'}/{_str(payload['result'])}"
    elif event_type == "call.cost":
        try:
            amount = Decimal(str(payload.get("total_cost")))
        except (InvalidOperation, ValueError):
            amount = None
        if amount is not None and amount.is_finite() and abs(amount) < 10**9:
            update["cost_amount"] = amount
            parts = payload.get("cost_parts")
            if isinstance(parts, list) and parts and isinstance(parts[0], dict):
                update["cost_currency"] = _str(parts[0].get("currency"))
    return call.model_copy(update=update) if update else call
