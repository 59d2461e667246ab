"""The repository's change hook: a call, turn or campaign write becomes outbox rows in its own
transaction (``SqlRepository.change_hook``), so an event exists exactly when its change does.

Nothing is written for an organisation without an endpoint that wants the event, so the cost
when webhooks are unused is one indexed read per call state change, turn or settled contact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from uuid import UUID

from ..jsonutil import dumps
from ..store.db import Conn
from ..store.outbox import SqlOutboxStore
from ..store.records import Call, Turn, utcnow
from .events import CAMPAIGN_COMPLETED, CAMPAIGN_PROGRESS, Event, body, call_events, campaign_event, turn_event
from .signing import new_message_id


class OutboxWriter:
    def __init__(self, store: SqlOutboxStore, *, max_age_s: float) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self._listeners: list[Callable[[], None]] = []

    def on_enqueue(self, listener: Callable[[], None]) -> None:
        """``listener`` runs after a write queued something (the delivery worker's wake-up; it may
        run before the commit, so the worker still polls)."""
        self._listeners.append(listener)

    async def call_changed(self, conn: Conn, before: Call | None, after: Call) -> None:
        # update_call holds the call's row lock here: events of one call are numbered in commit order.
        events = call_events(before, after)
        if events:
            await self._enqueue(conn, after.org_id, str(after.id), events)

    async def turn_recorded(self, conn: Conn, turn: Turn) -> None:
        await self._enqueue(conn, turn.org_id, str(turn.call_id), [turn_event(turn)], lock_call=turn.call_id)

    async def campaign_changed(self, conn: Conn, org_id: UUID, campaign_id: UUID, status: str, *,
                               completed: bool) -> None:
        wanted = CAMPAIGN_COMPLETED if completed else CAMPAIGN_PROGRESS
        endpoints = await self.store.subscribers(conn, org_id)
        if not any(wanted in types for _, types in endpoints):
            return  # nobody listens: spare the count
        counts = await self.store.contact_counts(conn, campaign_id)
        await self._enqueue(conn, org_id, str(campaign_id),
                            [campaign_event(campaign_id, status, counts, completed=completed)], endpoints=endpoints)

    async def erased(self, conn: Conn, org_id: UUID, call_ids: Sequence[UUID]) -> None:
        await self.store.erase_calls(conn, org_id, call_ids)

    async def _enqueue(self, conn: Conn, org_id: UUID, order_key: str, events: Sequence[Event], *,
                       lock_call: UUID | None = None,
                       endpoints: list[tuple[UUID, frozenset[str]]] | None = None) -> None:
        if endpoints is None:
            endpoints = await self.store.subscribers(conn, org_id)
        wanted = [(event, [eid for eid, types in endpoints if event[0] in types]) for event in events]
        wanted = [(event, targets) for event, targets in wanted if targets]
        if not wanted:
            return
        if lock_call is not None:
            await self.store.lock_call(conn, lock_call)
        now = utcnow()
        give_up_at = now + timedelta(seconds=self.max_age_s)
        for (event_type, data), targets in wanted:
            await self.store.enqueue(conn, message_id=new_message_id(), org_id=org_id, event_type=event_type,
                                     order_key=order_key, payload=dumps(body(event_type, data, now)),
                                     endpoint_ids=targets, now=now, give_up_at=give_up_at)
        for listener in self._listeners:
            listener()
