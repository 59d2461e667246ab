"""The webhook outbox: endpoints, messages, deliveries and their attempts (migration 0006).

A change the store writes (a call's status, a turn, a campaign's progress) puts its event in
``webhook_messages`` and one ``webhook_deliveries`` row per subscribed endpoint *in the same
transaction* (``control_plane.webhooks.writer.OutboxWriter``, the repository's change hook,
through :meth:`SqlOutboxStore.enqueue`): an event is stored if and only if the change is. The
delivery worker then claims rows with a lease.

Order: within one endpoint and one order key (the call, or the campaign), a delivery is only
claimable while no earlier delivery of that key is still pending; so a call's next event waits
for its previous one, and only the head of each queue is ever in flight. The delivery id is the
order. For calls it follows commit order because the writer takes the call's row lock first
(PostgreSQL; SQLite runs one transaction at a time). Claims use ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL so instances never claim the same row; SQLite is one process (the store's lock).

Every read reachable from the API takes the organisation id: another organisation's endpoint,
message or delivery is simply not found.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import orjson
from pydantic import BaseModel, ConfigDict

from .db import Where
from .records import utcnow

if TYPE_CHECKING:
    from ..crypto import DataKeys
    from .db import Conn, Database

PAYLOAD_CONTEXT = "webhook_messages.payload"
SECRET_CONTEXT = "webhook_endpoints.secret"
URL_CONTEXT = "webhook_endpoints.url"
DELIVERY_STATES = ("pending", "delivered", "failed")

# The head of each (endpoint, order key) queue: its oldest pending delivery. Only heads are ever
# claimed, so a call's next event waits for the one before it (in flight or waiting to retry).
# One aggregate over the pending rows instead of a per-row NOT EXISTS (quadratic on a backlog).
_HEADS = "SELECT min(id) FROM webhook_deliveries WHERE state = 'pending' GROUP BY endpoint_id, order_key"


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookEndpoint(_Record):
    id: UUID
    org_id: UUID
    url: str
    description: str = ""
    event_types: tuple[str, ...]
    enabled: bool = True
    secret: str
    previous_secret: str | None = None
    previous_expires_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    def signing_secrets(self, now: datetime) -> list[str]:
        """The new secret, and the previous one while its grace period lasts."""
        keys = [self.secret]
        if self.previous_secret and self.previous_expires_at and self.previous_expires_at > now:
            keys.append(self.previous_secret)
        return keys


class Delivery(_Record):
    id: int
    message_id: str
    endpoint_id: UUID
    org_id: UUID
    event_type: str
    order_key: str
    state: str
    attempts: int
    next_attempt_at: datetime
    give_up_at: datetime
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class Attempt(_Record):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """What the worker needs to send one delivery."""

    id: int
    message_id: str
    order_key: str
    url: str
    body: bytes
    secrets: tuple[str, ...]
    attempts: int
    give_up_at: datetime


@dataclass(frozen=True, slots=True)
class Replayed:
    queued: int  # deliveries queued
    found: bool  # false: no such message (a range is always "found")


class ReplayTooLarge(Exception):
    """A replay would queue more deliveries than allowed; nothing was queued."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} deliveries to queue")
        self.limit = limit


class OutboxStore(abc.ABC):
    """Endpoints, deliveries and their log, for the API and the delivery worker."""

    # -- endpoints -------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_endpoint(self, org_id: UUID, *, url: str, event_types: Sequence[str], secret: str,
                              description: str = "", enabled: bool = True) -> WebhookEndpoint: ...
    @abc.abstractmethod
    async def list_endpoints(self, org_id: UUID) -> list[WebhookEndpoint]: ...
    @abc.abstractmethod
    async def get_endpoint(self, org_id: UUID, endpoint_id: UUID) -> WebhookEndpoint | None: ...
    @abc.abstractmethod
    async def update_endpoint(self, org_id: UUID, endpoint_id: UUID, changes: dict[str, Any]
                              ) -> WebhookEndpoint | None: ...
    @abc.abstractmethod
    async def delete_endpoint(self, org_id: UUID, endpoint_id: UUID) -> bool: ...
    @abc.abstractmethod
    async def rotate_secret(self, org_id: UUID, endpoint_id: UUID, secret: str, *, grace_s: float
                            ) -> WebhookEndpoint | None:
        """``secret`` signs from now on; the current one keeps signing too for ``grace_s``."""

    # -- deliveries --------------------------------------------------------------------------
    @abc.abstractmethod
    async def claim(self, *, now: datetime, limit: int, lease_s: float,
                    per_org: int | None = None) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due heads, the organisations' queues taken in turn, and none of an
        organisation that has ``per_org`` deliveries in flight already."""
    @abc.abstractmethod
    async def settle(self, delivery_id: int, *, attempt: Attempt, state: str,
                     next_attempt_at: datetime | None = None) -> None:
        """Log the attempt and set the delivery's state (``pending`` again with ``next_attempt_at``)."""
    @abc.abstractmethod
    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due (a lease counts as due when it runs out)."""
    @abc.abstractmethod
    async def list_deliveries(self, org_id: UUID, *, endpoint_id: UUID | None = None, state: str | None = None,
                              since: datetime | None = None, until: datetime | None = None,
                              order_key: str | None = None, limit: int = 100,
                              before_id: int | None = None) -> list[Delivery]: ...
    @abc.abstractmethod
    async def get_delivery(self, org_id: UUID, delivery_id: int) -> tuple[Delivery, list[Attempt]] | None: ...
    @abc.abstractmethod
    async def replay(self, org_id: UUID, *, now: datetime, max_age_s: float, message_id: str | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     endpoint_id: UUID | None = None, max_rows: int | None = None) -> Replayed:
        """Queue the organisation's messages again (one, or those written in [since, until)), to their
        endpoints (or one). A message already waiting for an endpoint is not queued to it again
        (replays do not multiply deliveries); ``found`` is false when ``message_id`` is no
        message of the organisation's. More than
        ``max_rows`` to queue: :class:`ReplayTooLarge`, nothing queued."""


class SqlOutboxStore(OutboxStore):
    """:class:`OutboxStore` over the store's database (PostgreSQL or SQLite)."""

    def __init__(self, db: Database, keys: DataKeys) -> None:
        self.db = db
        self._cipher = keys.cipher

    # -- writing, inside the transaction of the change (the writer's side) ----------------------

    @staticmethod
    async def subscribers(conn: Conn, org_id: UUID) -> list[tuple[UUID, frozenset[str]]]:
        """The organisation's enabled endpoints with the event types each receives."""
        rows = await conn.fetch("SELECT id, event_types FROM webhook_endpoints WHERE org_id = $1 AND enabled = $2",
                                org_id, True)
        return [(_uuid(r["id"]), frozenset(_json(r["event_types"]))) for r in rows]

    async def lock_call(self, conn: Conn, call_id: UUID) -> None:
        if self.db.for_update:
            await conn.fetchrow(f"SELECT id FROM calls WHERE id = $1 {self.db.for_update}", call_id)

    @staticmethod
    async def contact_counts(conn: Conn, campaign_id: UUID) -> dict[str, int]:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM campaign_contacts WHERE campaign_id = $1"
                                " GROUP BY status", campaign_id)
        return {r["status"]: int(r["n"]) for r in rows}

    async def enqueue(self, conn: Conn, *, message_id: str, org_id: UUID, event_type: str, order_key: str,
                      payload: bytes, endpoint_ids: Iterable[UUID], now: datetime, give_up_at: datetime) -> None:
        await conn.execute(
            "INSERT INTO webhook_messages (id, org_id, event_type, order_key, payload_enc, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            message_id, org_id, event_type, order_key, self._cipher.seal(payload.decode(), PAYLOAD_CONTEXT), now)
        await conn.executemany(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, org_id, order_key, state, attempts,"
            " next_attempt_at, give_up_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $5)",
            [(message_id, endpoint_id, org_id, order_key, now, give_up_at) for endpoint_id in endpoint_ids])

    @staticmethod
    async def erase_calls(conn: Conn, org_id: UUID, call_ids: Sequence[UUID]) -> None:
        """GDPR erasure: the calls' events (numbers, transcripts) go, delivered or not."""
        for call_id in call_ids:
            await conn.execute("DELETE FROM webhook_messages WHERE org_id = $1 AND order_key = $2",
                               org_id, str(call_id))

    # -- endpoints ---------------------------------------------------------------------------

    # An endpoint's URL can carry the customer's credentials (userinfo, a token in the query), so
    # it is sealed like the secrets. A row written before URLs were sealed holds the plain URL
    # (no sealed token starts with a scheme); it is sealed when the endpoint is next changed.
    def _seal_url(self, url: str) -> str:
        return self._cipher.seal(url, URL_CONTEXT) or ""

    def _open_url(self, stored: str) -> str:
        return stored if stored.startswith(("http://", "https://")) else self._cipher.open(stored, URL_CONTEXT) or ""

    def _endpoint(self, row: dict[str, Any]) -> WebhookEndpoint:
        c = self._cipher
        return WebhookEndpoint(
            id=_uuid(row["id"]), org_id=_uuid(row["org_id"]), url=self._open_url(row["url"]),
            description=row["description"],
            event_types=tuple(_json(row["event_types"])), enabled=bool(row["enabled"]),
            secret=c.open(row["secret_enc"], SECRET_CONTEXT) or "",
            previous_secret=c.open(row["previous_secret_enc"], SECRET_CONTEXT),
            previous_expires_at=_dt(row["previous_expires_at"]),
            created_at=_dt(row["created_at"]), updated_at=_dt(row["updated_at"]),
        )

    async def create_endpoint(self, org_id: UUID, *, url: str, event_types: Sequence[str], secret: str,
                              description: str = "", enabled: bool = True) -> WebhookEndpoint:
        now = utcnow()
        endpoint = WebhookEndpoint(id=uuid4(), org_id=org_id, url=url, description=description,
                                   event_types=tuple(event_types), enabled=enabled, secret=secret,
                                   created_at=now, updated_at=now)
        async with self.db.connection() as conn:
            await conn.execute(
                "INSERT INTO webhook_endpoints (id, org_id, url, description, event_types, enabled, secret_enc,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                endpoint.id, org_id, self._seal_url(url), description, list(endpoint.event_types), enabled,
                self._cipher.seal(secret, SECRET_CONTEXT), now)
        return endpoint

    async def list_endpoints(self, org_id: UUID) -> list[WebhookEndpoint]:
        async with self.db.connection() as conn:
            rows = await conn.fetch("SELECT * FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id",
                                    org_id)
        return [self._endpoint(r) for r in rows]

    async def get_endpoint(self, org_id: UUID, endpoint_id: UUID) -> WebhookEndpoint | None:
        async with self.db.connection() as conn:
            row = await conn.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1 AND org_id = $2",
                                      endpoint_id, org_id)
        return None if row is None else self._endpoint(row)

    _EDITABLE = ("url", "description", "event_types", "enabled")

    async def update_endpoint(self, org_id: UUID, endpoint_id: UUID, changes: dict[str, Any]
                              ) -> WebhookEndpoint | None:
        changes = {k: (list(v) if k == "event_types" else v) for k, v in changes.items() if k in self._EDITABLE}
        if "url" in changes:
            changes["url"] = self._seal_url(changes["url"])
        now = utcnow()
        names = [*changes, "updated_at"]
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=3))
        async with self.db.transaction() as conn:
            n = await conn.execute(f"UPDATE webhook_endpoints SET {assignments} WHERE id = $1 AND org_id = $2",
                                   endpoint_id, org_id, *changes.values(), now)
            if not n:
                return None
            row = await conn.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", endpoint_id)
        return None if row is None else self._endpoint(row)

    async def delete_endpoint(self, org_id: UUID, endpoint_id: UUID) -> bool:
        async with self.db.connection() as conn:
            n = await conn.execute("DELETE FROM webhook_endpoints WHERE id = $1 AND org_id = $2", endpoint_id, org_id)
        return n > 0

    async def rotate_secret(self, org_id: UUID, endpoint_id: UUID, secret: str, *, grace_s: float
                            ) -> WebhookEndpoint | None:
        now = utcnow()
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                f"SELECT * FROM webhook_endpoints WHERE id = $1 AND org_id = $2 {self.db.for_update}",
                endpoint_id, org_id)
            if row is None:
                return None
            await conn.execute(
                "UPDATE webhook_endpoints SET secret_enc = $2, previous_secret_enc = $3, previous_expires_at = $4,"
                " updated_at = $5 WHERE id = $1",
                endpoint_id, self._cipher.seal(secret, SECRET_CONTEXT), row["secret_enc"],
                now + timedelta(seconds=grace_s), now)
            row = await conn.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", endpoint_id)
        return None if row is None else self._endpoint(row)

    # -- deliveries ----------------------------------------------------------------------------

    async def claim(self, *, now: datetime, limit: int, lease_s: float,
                    per_org: int | None = None) -> list[ClaimedDelivery]:
        lease_until = now + timedelta(seconds=lease_s)
        async with self.db.transaction() as conn:
            # Fairness: each due head is ranked within its organisation, after the deliveries the
            # organisation already has in flight; the lowest ranks go first and none past per_org.
            # So one organisation's backlog of failing deliveries (each waiting out its timeout)
            # never holds the worker while another's event waits. The lease conditions are
            # repeated at the locking level: PostgreSQL re-checks only those on a row another
            # instance just claimed, and rows another instance holds are skipped before the LIMIT.
            # (FOR UPDATE cannot sit on the window query itself, so it locks only d.)
            rows = await conn.fetch(
                "UPDATE webhook_deliveries SET lease_until = $2, attempts = attempts + 1 WHERE id IN ("
                " SELECT d.id FROM webhook_deliveries d JOIN ("
                "  SELECT h.id AS id, ROW_NUMBER() OVER (PARTITION BY h.org_id ORDER BY h.id)"
                "   + COALESCE(b.n, 0) AS rank FROM ("
                "    SELECT d.id AS id, d.org_id AS org_id FROM webhook_deliveries d"
                "    JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                f"    WHERE d.id IN ({_HEADS}) AND d.next_attempt_at <= $1"
                "    AND (d.lease_until IS NULL OR d.lease_until <= $1) AND e.enabled = $4) h"
                "  LEFT JOIN (SELECT org_id, count(*) AS n FROM webhook_deliveries"
                "   WHERE state = 'pending' AND lease_until > $1 GROUP BY org_id) b ON b.org_id = h.org_id"
                " ) r ON r.id = d.id"
                " WHERE r.rank <= $5 AND d.state = 'pending' AND (d.lease_until IS NULL OR d.lease_until <= $1)"
                f" ORDER BY r.rank, d.id LIMIT $3 {self.db.skip_locked.replace('FOR UPDATE', 'FOR UPDATE OF d')})"
                " RETURNING id, message_id, endpoint_id, order_key, attempts, give_up_at",
                now, lease_until, limit, True, per_org if per_org is not None else 2**62)
            if not rows:
                return []
            ids = [r["id"] for r in rows]
            marks = ", ".join(f"${i}" for i in range(1, len(ids) + 1))
            details = await conn.fetch(
                "SELECT d.id AS id, m.payload_enc AS payload_enc, e.url AS url, e.secret_enc AS secret_enc,"
                " e.previous_secret_enc AS previous_secret_enc, e.previous_expires_at AS previous_expires_at"
                " FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id"
                f" JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id IN ({marks})", *ids)
        by_id = {r["id"]: r for r in details}
        out = []
        for r in sorted(rows, key=lambda r: r["id"]):
            d = by_id[r["id"]]
            keys = [self._cipher.open(d["secret_enc"], SECRET_CONTEXT)]
            expires = _dt(d["previous_expires_at"])
            if d["previous_secret_enc"] is not None and expires is not None and expires > now:
                keys.append(self._cipher.open(d["previous_secret_enc"], SECRET_CONTEXT))
            give_up_at = _dt(r["give_up_at"])
            assert give_up_at is not None  # (NOT NULL)
            out.append(ClaimedDelivery(
                id=int(r["id"]), message_id=r["message_id"], order_key=r["order_key"], url=self._open_url(d["url"]),
                body=(self._cipher.open(d["payload_enc"], PAYLOAD_CONTEXT) or "").encode(),
                secrets=tuple(k for k in keys if k), attempts=int(r["attempts"]), give_up_at=give_up_at,
            ))
        return out

    async def settle(self, delivery_id: int, *, attempt: Attempt, state: str,
                     next_attempt_at: datetime | None = None) -> None:
        finished = None if state == "pending" else attempt.attempted_at
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error)"
                " VALUES ($1, $2, $3, $4, $5)",
                delivery_id, attempt.attempted_at, attempt.status_code, attempt.latency_ms, attempt.error)
            await conn.execute(
                "UPDATE webhook_deliveries SET state = $2, lease_until = NULL, last_status = $3, last_error = $4,"
                " next_attempt_at = COALESCE($5, next_attempt_at), finished_at = $6 WHERE id = $1",
                delivery_id, state, attempt.status_code, attempt.error, next_attempt_at, finished)

    async def next_due(self) -> datetime | None:
        async with self.db.connection() as conn:
            # Heads of queues only: a delivery behind another is due when that one is settled.
            row = await conn.fetchrow(
                "SELECT min(CASE WHEN d.lease_until IS NOT NULL AND d.lease_until > d.next_attempt_at"
                " THEN d.lease_until ELSE d.next_attempt_at END) AS due FROM webhook_deliveries d"
                f" JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id IN ({_HEADS}) AND e.enabled = $1",
                True)
        return None if row is None else _dt(row["due"])

    def _delivery(self, row: dict[str, Any]) -> Delivery:
        return Delivery(
            id=int(row["id"]), message_id=row["message_id"], endpoint_id=_uuid(row["endpoint_id"]),
            org_id=_uuid(row["org_id"]), event_type=row["event_type"], order_key=row["order_key"],
            state=row["state"], attempts=int(row["attempts"]), next_attempt_at=_dt(row["next_attempt_at"]),
            give_up_at=_dt(row["give_up_at"]), last_status=row["last_status"], last_error=row["last_error"],
            created_at=_dt(row["created_at"]), finished_at=_dt(row["finished_at"]),
        )

    async def list_deliveries(self, org_id: UUID, *, endpoint_id: UUID | None = None, state: str | None = None,
                              since: datetime | None = None, until: datetime | None = None,
                              order_key: str | None = None, limit: int = 100,
                              before_id: int | None = None) -> list[Delivery]:
        where = Where("d.org_id = {}", org_id)
        where.when(endpoint_id, "d.endpoint_id = {}")
        where.when(state, "d.state = {}")
        where.when(since, "d.created_at >= {}")
        where.when(until, "d.created_at < {}")
        where.when(order_key, "d.order_key = {}")
        where.when(before_id, "d.id < {}")
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT d.*, m.event_type AS event_type FROM webhook_deliveries d"
                f" JOIN webhook_messages m ON m.id = d.message_id WHERE {where}"
                f" ORDER BY d.id DESC LIMIT {where.arg(limit)}", *where.args)
        return [self._delivery(r) for r in rows]

    async def get_delivery(self, org_id: UUID, delivery_id: int) -> tuple[Delivery, list[Attempt]] | None:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT d.*, m.event_type AS event_type FROM webhook_deliveries d"
                " JOIN webhook_messages m ON m.id = d.message_id WHERE d.id = $1 AND d.org_id = $2",
                delivery_id, org_id)
            if row is None:
                return None
            attempts = await conn.fetch(
                "SELECT attempted_at, status_code, latency_ms, error FROM webhook_attempts WHERE delivery_id = $1"
                " ORDER BY id", delivery_id)
        return self._delivery(row), [Attempt(attempted_at=_dt(a["attempted_at"]), status_code=a["status_code"],
                                             latency_ms=float(a["latency_ms"]), error=a["error"]) for a in attempts]

    async def replay(self, org_id: UUID, *, now: datetime, max_age_s: float, message_id: str | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     endpoint_id: UUID | None = None, max_rows: int | None = None) -> Replayed:
        where = ["m.org_id = $1", "e.org_id = $1",
                 "NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.message_id = m.id"
                 " AND p.endpoint_id = e.id AND p.state = 'pending')"]
        args: list[Any] = [org_id]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if message_id is not None:
            where.append(f"m.id = {arg(message_id)}")
        if since is not None:
            where.append(f"m.created_at >= {arg(since)}")
        if until is not None:
            where.append(f"m.created_at < {arg(until)}")
        if endpoint_id is not None:
            where.append(f"e.id = {arg(endpoint_id)}")
        give_up = now + timedelta(seconds=max_age_s)
        async with self.db.transaction() as conn:
            # To the endpoints that received the message before (a replay never widens its audience).
            rows = await conn.fetch(
                "SELECT DISTINCT m.id AS message_id, m.order_key AS order_key, e.id AS endpoint_id,"
                " m.created_at AS created_at FROM webhook_messages m"
                " JOIN webhook_deliveries d ON d.message_id = m.id JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                f" WHERE {' AND '.join(where)} ORDER BY m.created_at, m.id"
                + ("" if max_rows is None else f" LIMIT {arg(max_rows + 1)}"), *args)
            if max_rows is not None and len(rows) > max_rows:
                raise ReplayTooLarge(max_rows)
            if not rows and message_id is not None:  # none to queue: say whether the event exists
                found = await conn.fetchrow("SELECT id FROM webhook_messages WHERE id = $1 AND org_id = $2",
                                            message_id, org_id)
                return Replayed(queued=0, found=found is not None)
            for r in rows:
                await conn.execute(
                    "INSERT INTO webhook_deliveries (message_id, endpoint_id, org_id, order_key, state, attempts,"
                    " next_attempt_at, give_up_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $5)",
                    r["message_id"], r["endpoint_id"], org_id, r["order_key"], now, give_up)
        return Replayed(queued=len(rows), found=True)
