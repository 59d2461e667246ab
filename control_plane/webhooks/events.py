"""Which stored change is which event, and what its body says: pure functions of records.

Bodies follow the Standard Webhooks recommendation ``{"type", "timestamp", "data"}``. They
carry what the organisation's own API shows (numbers, transcripts): the receiver is the
organisation's app, and the outbox seals them at rest like the call records.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from ..store.records import TERMINAL_STATUSES, Call, Turn
from ..voicemail import is_machine

CALL_STARTED = "call.started"
CALL_ANSWERED = "call.answered"
CALL_TURN = "call.turn"
CALL_ENDED = "call.ended"
CALL_SUMMARY = "call.summary"
CALL_RECORDING_READY = "call.recording_ready"
CALL_MACHINE_DETECTION = "call.machine_detection"
CAMPAIGN_PROGRESS = "campaign.progress"
CAMPAIGN_COMPLETED = "campaign.completed"

EVENT_TYPES: tuple[str, ...] = (
    CALL_STARTED, CALL_ANSWERED, CALL_TURN, CALL_ENDED, CALL_SUMMARY, CALL_RECORDING_READY,
    CALL_MACHINE_DETECTION, CAMPAIGN_PROGRESS, CAMPAIGN_COMPLETED,
)

Event = tuple[str, dict[str, Any]]  # (type, data)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def call_data(call: Call) -> dict[str, Any]:
    return {
        "call_id": str(call.id), "status": call.status, "direction": call.direction,
        "from": call.from_number, "to": call.to_number,
        "campaign_id": None if call.campaign_id is None else str(call.campaign_id),
        "call_control_id": call.call_control_id, "created_at": _iso(call.created_at),
        "answered_at": _iso(call.answered_at), "ended_at": _iso(call.ended_at),
    }


def call_events(before: Call | None, after: Call) -> list[Event]:
    """The events one write of a call reports, in the order they happened."""
    if after.erased_at is not None:
        return []
    if before is None:
        events: list[Event] = [(CALL_STARTED, call_data(after))]
        before = after.model_copy(update={"status": "queued"})
        if after.status == "queued":
            return events
    else:
        events = []
    if after.status != before.status:
        if after.status == "answered" or (after.answered_at is not None and before.answered_at is None):
            events.append((CALL_ANSWERED, call_data(after)))
        if after.status in TERMINAL_STATUSES and before.status not in TERMINAL_STATUSES:
            events.append((CALL_ENDED, {
                **call_data(after), "hangup_cause": after.hangup_cause, "hangup_source": after.hangup_source,
                "amd_result": after.amd_result, "error": after.error,
                "cost": None if after.cost_amount is None else {"amount": str(after.cost_amount),
                                                                "currency": after.cost_currency},
            }))
    if after.amd_result and after.amd_result != before.amd_result:
        # Answering machine detection's verdict (then the greeting's end, on a machine).
        events.append((CALL_MACHINE_DETECTION, {"call_id": str(after.id), "result": after.amd_result,
                                                 "machine": is_machine(after.amd_result)}))
    if (after.summary, after.outcome) != (before.summary, before.outcome) and (after.summary or after.outcome):
        events.append((CALL_SUMMARY, {"call_id": str(after.id), "summary": after.summary,
                                      "outcome": after.outcome}))
    if after.recording_url and after.recording_url != before.recording_url:
        events.append((CALL_RECORDING_READY, {"call_id": str(after.id), "recording_id": after.recording_id,
                                              "recording_url": after.recording_url}))
    return events


def turn_event(turn: Turn) -> Event:
    return (CALL_TURN, {
        "call_id": str(turn.call_id), "index": turn.index, "caller_text": turn.caller_text,
        "agent_text": turn.agent_text, "interrupted": turn.interrupted, "latency": turn.latency,
        "end_reason": turn.end_reason, "hold": turn.hold, "contour": turn.contour, "speculation": turn.speculation,
        "merged": turn.merged,
    })


def campaign_event(campaign_id: UUID, status: str, contacts: Mapping[str, int], *, completed: bool) -> Event:
    return (CAMPAIGN_COMPLETED if completed else CAMPAIGN_PROGRESS, {
        "campaign_id": str(campaign_id), "status": status, "contacts": dict(contacts),
        "contacts_total": sum(contacts.values()),
    })


def body(event_type: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {"type": event_type, "timestamp": at.isoformat(), "data": data}
