"""What the store holds, as typed records (plaintext; the repository seals and hashes).

Phone numbers appear twice on a record: the number (``None`` once erased) and its
keyed hash (what lookups use and what an erasure leaves behind).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

CallStatus = Literal["queued", "initiated", "answered", "completed", "failed", "busy", "no_answer", "canceled"]
CALL_STATUSES: tuple[str, ...] = CallStatus.__args__  # type: ignore[attr-defined]
TERMINAL_STATUSES = frozenset({"completed", "failed", "busy", "no_answer", "canceled"})
STATUS_RANK = {"queued": 0, "initiated": 1, "answered": 2, **{s: 3 for s in TERMINAL_STATUSES}}
Direction = Literal["outbound", "inbound"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Organisation(Record):
    id: UUID
    name: str
    created_at: datetime
    settings: dict[str, Any] = Field(default_factory=dict)


class ApiKey(Record):
    id: UUID
    org_id: UUID
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


class PhoneNumber(Record):
    """A number the organisation owns; inbound calls to it are answered with ``agent_config``."""

    id: UUID
    org_id: UUID
    number: str
    agent_config: dict[str, Any]
    created_at: datetime


class StatusChange(Record):
    status: CallStatus
    at: datetime
    reason: str


class Call(Record):
    id: UUID
    org_id: UUID
    direction: Direction
    to_number: str | None
    from_number: str | None
    to_hash: str = ""
    from_hash: str = ""
    status: CallStatus
    status_history: tuple[StatusChange, ...] = ()
    campaign_id: UUID | None = None
    call_control_id: str | None = None
    call_leg_id: str | None = None
    call_session_id: str | None = None
    agent_config: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_requested_at: datetime | None = None
    hangup_cause: str | None = None
    hangup_source: str | None = None
    sip_hangup_cause: str | None = None
    quality: dict[str, Any] | None = None
    summary: str | None = None
    outcome: dict[str, Any] | None = None
    recording_id: str | None = None
    recording_url: str | None = None
    cost_amount: Decimal | None = None
    cost_currency: str | None = None
    amd_result: str | None = None
    idempotency_key_hash: str | None = None
    """Keyed hash of the client's ``Idempotency-Key`` for the start request, unique per organisation."""
    request_fingerprint: str | None = None
    """Keyed hash of the start request, to tell a retry from a different request with the same key."""
    stream_state: str | None = None
    error: dict[str, Any] | None = None
    erased_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Turn(Record):
    call_id: UUID
    org_id: UUID
    index: int = Field(ge=0)
    caller_text: str | None = None
    agent_text: str | None = None
    interrupted: bool = False
    latency: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    # How the turn ended, as the engine's turn policy decided it (engine.turn_outcome.TurnOutcome;
    # kept as text, so a value a newer engine adds still reads): None where it gave no account.
    end_reason: str | None = None
    hold: str | None = None
    contour: bool = False
    speculation: str | None = None
    merged: bool = False


class DncEntry(Record):
    """A number the organisation must not call; only its keyed hash is stored."""

    org_id: UUID
    phone_hash: str
    reason: str | None = None
    source: str = "api"
    created_at: datetime


class StoredEvent(Record):
    """One webhook as received (payload sealed at rest), and how far processing got."""

    event_id: str
    event_type: str
    occurred_at: datetime | None
    call_control_id: str | None = None
    org_id: UUID | None = None
    call_id: UUID | None = None
    payload: dict[str, Any]
    from_hash: str | None = None
    to_hash: str | None = None
    received_at: datetime
    claimed_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    processed_at: datetime | None = None


class EventSummary(Record):
    event_id: str
    event_type: str
    occurred_at: datetime | None
    received_at: datetime


class ErasureCounts(Record):
    calls: int = 0
    transcripts: int = 0
    summaries: int = 0
    outcomes: int = 0
    recordings: int = 0
    agent_configs: int = 0
    call_events: int = 0
    campaign_contacts: int = 0


class Erasure(Record):
    id: UUID
    org_id: UUID
    phone_hash: str
    counts: dict[str, Any]
    created_at: datetime


class CallPage(Record):
    calls: tuple[Call, ...]
    next_cursor: tuple[datetime, UUID] | None
