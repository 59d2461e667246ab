"""Received Telnyx webhooks: stored (sealed) before they are acknowledged, then claimed by workers.

A claim is a lease: ``claimed_at`` set and ``attempts`` bumped on rows not processed and not
claimed within ``lease_s``; with ``SKIP LOCKED`` on PostgreSQL concurrent workers take disjoint rows.
"""

from __future__ import annotations

import abc
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ..crypto import DataKeys
from .db import Database
from .records import EventSummary, StoredEvent, utcnow


class EventRepository(abc.ABC):
    @abc.abstractmethod
    async def insert_event(self, event: StoredEvent) -> bool:
        """Store a received webhook; ``False`` when its event id is already stored."""
    @abc.abstractmethod
    async def get_event(self, event_id: str) -> StoredEvent | None: ...
    @abc.abstractmethod
    async def claim_events(self, *, limit: int, lease_s: float, now: datetime | None = None) -> list[StoredEvent]: ...
    @abc.abstractmethod
    async def complete_event(self, event_id: str, *, org_id: UUID | None, call_id: UUID | None,
                             error: str | None = None) -> None: ...
    @abc.abstractmethod
    async def retry_event(self, event_id: str, *, error: str, retry_in_s: float, lease_s: float) -> None: ...
    @abc.abstractmethod
    async def list_call_events(self, call_id: UUID) -> list[EventSummary]: ...
    @abc.abstractmethod
    async def count_unprocessed_events(self) -> int: ...


class SqlEventRepository(EventRepository):
    def __init__(self, db: Database, keys: DataKeys) -> None:
        self.db = db
        self._cipher = keys.cipher

    def _event(self, row: dict[str, Any]) -> StoredEvent:
        data = dict(row)
        data["payload"] = self._cipher.open_json(data.pop("payload_enc"), "call_events.payload")
        return StoredEvent.model_validate(data)

    async def insert_event(self, event: StoredEvent) -> bool:
        row = await self.db.fetchrow(
            "INSERT INTO call_events (event_id, event_type, occurred_at, call_control_id, org_id, call_id,"
            " payload_enc, from_hash, to_hash, received_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
            " $10, 0) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            event.event_id, event.event_type, event.occurred_at, event.call_control_id, event.org_id, event.call_id,
            self._cipher.seal_json(event.payload, "call_events.payload"), event.from_hash, event.to_hash,
            event.received_at,
        )
        return row is not None

    async def get_event(self, event_id: str) -> StoredEvent | None:
        row = await self.db.fetchrow("SELECT * FROM call_events WHERE event_id = $1", event_id)
        return None if row is None else self._event(row)

    async def claim_events(self, *, limit: int, lease_s: float, now: datetime | None = None) -> list[StoredEvent]:
        now = now or utcnow()
        rows = await self.db.fetch(
            "UPDATE call_events SET claimed_at = $1, attempts = attempts + 1 WHERE event_id IN ("
            " SELECT event_id FROM call_events WHERE processed_at IS NULL"
            " AND (claimed_at IS NULL OR claimed_at < $2)"
            f" ORDER BY received_at LIMIT $3 {self.db.skip_locked}) RETURNING *",
            now, now - timedelta(seconds=lease_s), limit,
        )
        events = [self._event(r) for r in rows]
        events.sort(key=lambda e: (e.occurred_at or e.received_at, e.received_at))
        return events

    async def complete_event(self, event_id: str, *, org_id: UUID | None, call_id: UUID | None,
                             error: str | None = None) -> None:
        await self.db.execute(
            "UPDATE call_events SET processed_at = $2, org_id = COALESCE($3, org_id),"
            " call_id = COALESCE($4, call_id), last_error = $5 WHERE event_id = $1",
            event_id, utcnow(), org_id, call_id, error,
        )

    async def retry_event(self, event_id: str, *, error: str, retry_in_s: float, lease_s: float) -> None:
        # Claimable again once claimed_at < now - lease: back-date the claim accordingly.
        claimed = utcnow() - timedelta(seconds=lease_s) + timedelta(seconds=retry_in_s)
        await self.db.execute("UPDATE call_events SET claimed_at = $2, last_error = $3 WHERE event_id = $1",
                              event_id, claimed, error)

    async def list_call_events(self, call_id: UUID) -> list[EventSummary]:
        rows = await self.db.fetch(
            "SELECT event_id, event_type, occurred_at, received_at FROM call_events WHERE call_id = $1"
            " ORDER BY occurred_at, received_at",
            call_id,
        )
        return [EventSummary.model_validate(r) for r in rows]

    async def count_unprocessed_events(self) -> int:
        row = await self.db.fetchrow("SELECT count(*) AS n FROM call_events WHERE processed_at IS NULL")
        return int(row["n"]) if row else 0
