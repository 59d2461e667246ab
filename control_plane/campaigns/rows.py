"""The campaign aggregate's rows as typed values, the SQL status sets, and small SQL helpers.

Shared by :mod:`.store` (campaign rows) and :mod:`.queue` (contact rows, the dialer's queue).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from ..store import Call
from .models import ACTIVE_STATUSES, DUE_STATUSES, CampaignConfig
from .outcomes import Decision

LIVE_CALL = "('queued', 'initiated', 'answered')"
TERMINAL_CALL = "('completed', 'failed', 'busy', 'no_answer', 'canceled')"
DUE = "('pending', 'retry_scheduled', 'outside_window')"
ACTIVE = "('claimed', 'dialing', 'in_progress')"
NOT_DONE = "('pending', 'retry_scheduled', 'outside_window', 'claimed', 'dialing', 'in_progress')"
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"draft"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused"}), "running"),
    "cancel": (frozenset({"draft", "running", "paused"}), "cancelled"),
}
assert DUE_STATUSES == ("pending", "retry_scheduled", "outside_window") and len(ACTIVE_STATUSES) == 3


class CampaignError(Exception):
    """A campaign operation refused: ``code`` says why (not_found, invalid_state, no_contacts...)."""

    def __init__(self, code: str, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class DialCampaign:
    id: UUID
    org_id: UUID
    name: str
    status: str
    agent_config: dict[str, Any]
    config: CampaignConfig | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    from_number: str | None = None  # the first caller number (sealed in campaigns.from_enc)


class ContactRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    org_id: UUID
    campaign_id: UUID
    phone: str | None
    phone_hash: str
    data: dict[str, Any] | None
    status: str
    attempts: int
    last_call_id: UUID | None
    seq: int = 0
    next_attempt_at: datetime | None = None
    claim_token: UUID | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    dial_started_at: datetime | None = None
    outcome: str | None = None
    success: bool | None = None
    cost: Decimal = Decimal(0)
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PreparedContact:
    phone: str
    phone_hash: str
    data: dict[str, Any]
    row: int


@dataclass(frozen=True, slots=True)
class Commit:
    """What :meth:`CampaignStore.commit_dial` did: ``call`` set when the attempt is committed."""

    result: str  # committed | not_running | at_capacity | numbers_busy | lost
    call: Call | None = None
    campaign_status: str | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    contact_id: UUID
    campaign_id: UUID
    decision: Decision


def as_uuid(value: Any) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(str(value))


@functools.lru_cache(maxsize=64)
def value_rows(n: int, width: int, start: int = 1) -> str:
    return ", ".join("(" + ", ".join(f"${start + i * width + j}" for j in range(width)) + ")" for i in range(n))


def marks(n: int, start: int) -> str:
    return ", ".join(f"${start + i}" for i in range(n))


def as_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def call_agent_config(campaign: DialCampaign, contact: ContactRow) -> dict[str, Any]:
    """The campaign's agent overrides with the contact's name and columns as prompt variables."""
    config = dict(campaign.agent_config)
    data = contact.data or {}
    variables = {**(config.get("variables") or {}), **(data.get("variables") or {})}
    if data.get("name"):
        variables.setdefault("name", data["name"])
    if variables:
        config["variables"] = {str(k): str(v) for k, v in variables.items()}
    return config
