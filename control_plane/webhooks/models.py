"""Request and response bodies of the webhook endpoints API (``/api/webhooks/...``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from yarl import URL

from ..store.outbox import Attempt, Delivery, WebhookEndpoint
from .events import EVENT_TYPES

EventType = Literal[
    "call.started", "call.answered", "call.turn", "call.ended", "call.summary", "call.recording_ready",
    "call.machine_detection",
    "campaign.progress", "campaign.completed",
]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]

MAX_URL = 2048


def masked_url(url: str) -> str:
    """``scheme://host[:port]/path``, with ``?…`` for a query: userinfo and query strings are where
    a receiver's credentials go, and an endpoint's URL is shown to everyone who can list them."""
    try:
        parsed = URL(url)
    except ValueError:
        return "–"
    shown = str(parsed.with_user(None).with_query(None).with_fragment(None)) if parsed.absolute else "–"
    return shown + "?…" if parsed.raw_query_string else shown


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date out of range") from None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateEndpointRequest(_Request):
    url: str = Field(min_length=1, max_length=MAX_URL, description="http(s) URL the events are POSTed to")
    event_types: list[EventType] = Field(default_factory=lambda: [cast(EventType, e) for e in EVENT_TYPES],
                                         min_length=1, description="Event types to receive (default: all)")
    description: str = Field("", max_length=500)
    enabled: bool = True


class UpdateEndpointRequest(_Request):
    url: str | None = Field(None, min_length=1, max_length=MAX_URL)
    event_types: list[EventType] | None = Field(None, min_length=1)
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None


class ReplayRequest(_Request):
    message_id: str | None = Field(None, min_length=1, max_length=100, description="One event (webhook-id)")
    since: datetime | None = Field(None, description="Events written at or after (with until: a range)")
    until: datetime | None = Field(None, description="Events written before")
    endpoint_id: UUID | None = Field(None, description="Only to this endpoint (default: every endpoint it went to)")

    _times = field_validator("since", "until")(classmethod(lambda cls, v: _utc(v)))

    @model_validator(mode="after")
    def _one_selection(self) -> ReplayRequest:
        if (self.message_id is None) == (self.since is None or self.until is None):
            raise ValueError("give either message_id, or since and until")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class ListDeliveriesQuery(_Request):
    endpoint_id: UUID | None = None
    state: Literal["pending", "delivered", "failed"] | None = None
    call_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(100, ge=1, le=1000)
    before_id: int | None = Field(None, ge=1, le=2**63 - 1, description="Page: deliveries older than this id")

    _times = field_validator("since", "until")(classmethod(lambda cls, v: _utc(v)))


class EndpointOut(BaseModel):
    id: UUID
    url: str = Field(description="scheme://host/path, with ?… for a query: userinfo and query are not shown")
    description: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the secret before the last rotation signs too")

    @classmethod
    def of(cls, e: WebhookEndpoint) -> EndpointOut:
        return cls(id=e.id, url=masked_url(e.url), description=e.description, event_types=list(e.event_types),
                   enabled=e.enabled, created_at=e.created_at, updated_at=e.updated_at,
                   previous_secret_expires_at=e.previous_expires_at if e.previous_secret else None)


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="whsec_...: verify webhook-signature with it (shown at creation and rotation)")


class EndpointList(BaseModel):
    data: list[EndpointOut]


class EndpointDeleted(BaseModel):
    id: UUID
    deleted: bool = True


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls(attempted_at=a.attempted_at, status_code=a.status_code, latency_ms=a.latency_ms, error=a.error)


class DeliveryOut(BaseModel):
    id: int
    message_id: str = Field(description="The webhook-id header")
    endpoint_id: UUID
    event_type: str
    order_key: str = Field(description="The call or campaign the event belongs to")
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(id=d.id, message_id=d.message_id, endpoint_id=d.endpoint_id, event_type=d.event_type,
                   order_key=d.order_key, state=d.state,  # type: ignore[arg-type]
                   attempts=d.attempts, next_attempt_at=d.next_attempt_at if d.state == "pending" else None,
                   last_status=d.last_status, last_error=d.last_error, created_at=d.created_at,
                   finished_at=d.finished_at)


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut]


class DeliveryList(BaseModel):
    data: list[DeliveryOut]
    next_before_id: int | None


class ReplayResult(BaseModel):
    queued: int = Field(description="Deliveries queued again (same webhook-id: receivers de-duplicate on it)")
