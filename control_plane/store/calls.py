"""Calls: one row per call, personal fields sealed, numbers also kept as keyed hashes for lookups.

:class:`CallCodec` turns a :class:`Call` into columns and back (sealing and opening on the
way); it is public so that other aggregates that insert a call inside their own transaction
(the campaign dialer commits an attempt and its call row together) write exactly these columns.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from ..crypto import DataKeys
from .db import Conflict, Conn, Database, Where, json_column, placeholders
from .hooks import ChangeHooks
from .records import Call, CallPage, StatusChange, utcnow

CallMutation = Callable[[Call], "Call | None"]

LIVE_STATUSES_SQL = "('queued', 'initiated', 'answered')"


class CallRepository(abc.ABC):
    @abc.abstractmethod
    async def create_call(self, call: Call) -> Call: ...
    @abc.abstractmethod
    async def get_call(self, org_id: UUID, call_id: UUID) -> Call | None: ...
    @abc.abstractmethod
    async def get_call_by_idempotency_key(self, org_id: UUID, key_hash: str) -> Call | None:
        """The call started with the ``Idempotency-Key`` whose keyed hash this is."""
    @abc.abstractmethod
    async def get_call_unscoped(self, call_id: UUID) -> Call | None:
        """For webhooks, which carry no organisation: the call a ``client_state`` names."""
    @abc.abstractmethod
    async def find_call_by_control_id(self, call_control_id: str) -> Call | None: ...
    @abc.abstractmethod
    async def find_call_by_leg_id(self, call_leg_id: str) -> Call | None:
        """The call whose Telnyx leg this is: for events without a call_control_id
        (``call.recording.saved`` in Telnyx's SDK model). Every organisation's."""
    @abc.abstractmethod
    async def list_unconfirmed_dials(self, before: datetime, *, limit: int = 100) -> list[Call]:
        """Queued calls with no Telnyx call id, created before ``before``: every organisation's."""
    @abc.abstractmethod
    async def list_answered_calls(self, answered_before: datetime, *, limit: int = 200,
                                  excluding: Collection[UUID] = ()) -> list[Call]:
        """Calls still ``answered`` (live at Telnyx as far as we know), answered before ``answered_before``,
        oldest first: every organisation's (the stream recovery sweep). Calls in ``excluding`` (the
        sweeping instance's own live streams) are left out before they are decoded."""
    @abc.abstractmethod
    async def update_call(self, call_id: UUID, mutate: CallMutation) -> Call | None:
        """Read the call under a row lock, apply ``mutate`` (pure; ``None`` = no change), write the difference."""
    @abc.abstractmethod
    async def list_calls(self, org_id: UUID, *, status: str | None = None, campaign_id: UUID | None = None,
                         since: datetime | None = None, until: datetime | None = None, limit: int = 50,
                         after: tuple[datetime, UUID] | None = None, direction: str | None = None) -> CallPage: ...
    @abc.abstractmethod
    async def list_live_calls(self, org_id: UUID, *, limit: int = 200) -> list[Call]:
        """The organisation's calls not yet ended (queued, initiated, answered), newest first."""


class CallCodec:
    """:class:`Call` <-> ``calls`` columns, sealing the personal fields and hashing the numbers."""

    PLAIN = (
        "id", "org_id", "direction", "to_hash", "from_hash", "status", "campaign_id", "call_control_id",
        "call_leg_id", "call_session_id", "created_at", "updated_at", "answered_at", "ended_at",
        "hangup_requested_at", "hangup_cause", "hangup_source", "sip_hangup_cause", "quality", "recording_id",
        "cost_amount", "cost_currency", "amd_result", "stream_state", "error", "erased_at",
        "idempotency_key_hash", "request_fingerprint",
    )
    SEALED: ClassVar[dict[str, tuple[str, str, bool]]] = {
        "to_number": ("to_enc", "calls.to", False),
        "from_number": ("from_enc", "calls.from", False),
        "agent_config": ("agent_config_enc", "calls.agent_config", True),
        "summary": ("summary_enc", "calls.summary", False),
        "outcome": ("outcome_enc", "calls.outcome", True),
        "recording_url": ("recording_url_enc", "calls.recording_url", False),
    }

    def __init__(self, keys: DataKeys, hooks: ChangeHooks | None = None) -> None:
        self._cipher = keys.cipher
        self._hasher = keys.hasher
        self.hooks = hooks or ChangeHooks()

    def hashed(self, call: Call) -> Call:
        """``call`` with ``to_hash`` / ``from_hash`` computed from its numbers (kept where a number is gone)."""
        return call.model_copy(update={
            "to_hash": self._hasher.phone(call.to_number) if call.to_number else call.to_hash,
            "from_hash": self._hasher.phone(call.from_number) if call.from_number else call.from_hash,
        })

    def columns(self, call: Call, fields: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in fields:
            value = getattr(call, field)
            if field in self.SEALED:
                column, context, is_json = self.SEALED[field]
                if is_json:
                    out[column] = None if value is None else self._cipher.seal_json(value, context)
                else:
                    out[column] = self._cipher.seal(value, context)
            elif field == "status_history":
                out["status_history"] = [s.model_dump(mode="json") for s in value]
            else:
                out[field] = value
        return out

    def call(self, row: dict[str, Any]) -> Call:
        data = {name: row[name] for name in self.PLAIN}
        for field, (column, context, is_json) in self.SEALED.items():
            token = row[column]
            data[field] = self._cipher.open_json(token, context) if is_json else self._cipher.open(token, context)
        if data["agent_config"] is None:
            data["agent_config"] = {}
        data["status_history"] = tuple(StatusChange.model_validate(s) for s in json_column(row["status_history"]))
        data["quality"] = json_column(row["quality"]) if row["quality"] is not None else None
        data["error"] = json_column(row["error"]) if row["error"] is not None else None
        return Call.model_validate(data)

    async def insert(self, conn: Conn, call: Call) -> Call:
        """Insert ``call`` (hashes computed) on ``conn``, inside the caller's transaction if it has one;
        the change listener (:mod:`.hooks`) is told in it."""
        call = self.hashed(call)
        columns = self.columns(call, [*self.PLAIN, *self.SEALED, "status_history"])
        await conn.execute(f"INSERT INTO calls ({', '.join(columns)}) VALUES ({placeholders(len(columns))})",
                           *columns.values())
        if self.hooks.listener is not None:
            await self.hooks.listener.call_changed(conn, None, call)
        return call


class SqlCallRepository(CallRepository):
    def __init__(self, db: Database, codec: CallCodec) -> None:
        self.db = db
        self.codec = codec

    async def create_call(self, call: Call) -> Call:
        try:
            async with self.db.transaction() as conn:
                return await self.codec.insert(conn, call)
        except Exception as exc:
            if self.db.is_unique_violation(exc):
                raise Conflict("a call with that id or call_control_id already exists") from None
            raise

    async def _one(self, sql: str, *args: Any) -> Call | None:
        row = await self.db.fetchrow(sql, *args)
        return None if row is None else self.codec.call(row)

    async def _many(self, sql: str, *args: Any) -> list[Call]:
        return [self.codec.call(row) for row in await self.db.fetch(sql, *args)]

    async def get_call(self, org_id: UUID, call_id: UUID) -> Call | None:
        return await self._one("SELECT * FROM calls WHERE id = $1 AND org_id = $2", call_id, org_id)

    async def get_call_by_idempotency_key(self, org_id: UUID, key_hash: str) -> Call | None:
        return await self._one("SELECT * FROM calls WHERE org_id = $1 AND idempotency_key_hash = $2", org_id, key_hash)

    async def get_call_unscoped(self, call_id: UUID) -> Call | None:
        return await self._one("SELECT * FROM calls WHERE id = $1", call_id)

    async def find_call_by_control_id(self, call_control_id: str) -> Call | None:
        return await self._one("SELECT * FROM calls WHERE call_control_id = $1", call_control_id)

    async def find_call_by_leg_id(self, call_leg_id: str) -> Call | None:
        return await self._one("SELECT * FROM calls WHERE call_leg_id = $1 ORDER BY created_at DESC LIMIT 1",
                               call_leg_id)

    async def list_unconfirmed_dials(self, before: datetime, *, limit: int = 100) -> list[Call]:
        return await self._many(
            "SELECT * FROM calls WHERE status = 'queued' AND call_control_id IS NULL AND created_at < $1"
            " ORDER BY created_at LIMIT $2", before, limit)

    async def list_answered_calls(self, answered_before: datetime, *, limit: int = 200,
                                  excluding: Collection[UUID] = ()) -> list[Call]:
        # Ids first, whole rows only for calls not excluded: the sweep runs on every stream close and
        # every streaming.stopped webhook, and nearly every live call is one of this instance's own
        # streams. Reading all their columns each time cost ~1.3 ms of CPU per sweep at 250 calls.
        # The limit counts calls left after the exclusion, so more than `limit` live streams of our
        # own cannot hide a lapsed call behind them.
        ids = await self.db.fetch(
            "SELECT id FROM calls WHERE status = 'answered' AND answered_at < $1 ORDER BY answered_at",
            answered_before)
        skip = {str(i) for i in excluding}
        wanted = [row["id"] for row in ids if str(row["id"]) not in skip][:limit]
        if not wanted:
            return []
        return await self._many(  # still answered: the call may have ended between the two reads
            f"SELECT * FROM calls WHERE id IN ({placeholders(len(wanted))}) AND status = 'answered'"
            " ORDER BY answered_at", *wanted)

    async def update_call(self, call_id: UUID, mutate: CallMutation) -> Call | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(f"SELECT * FROM calls WHERE id = $1 {self.db.for_update}", call_id)
            if row is None:
                return None
            before = self.codec.call(row)
            after = mutate(before)
            if after is None or after == before:
                return before
            changed = [f for f in Call.model_fields if getattr(before, f) != getattr(after, f)]
            if "updated_at" not in changed:
                after = after.model_copy(update={"updated_at": utcnow()})
                changed.append("updated_at")
            columns = self.codec.columns(after, changed)
            assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
            try:
                await conn.execute(f"UPDATE calls SET {assignments} WHERE id = $1", call_id, *columns.values())
            except Exception as exc:
                if self.db.is_unique_violation(exc):
                    raise Conflict("call_control_id already belongs to another call") from None
                raise
            if self.codec.hooks.listener is not None:  # under the row lock: a call's events in commit order
                await self.codec.hooks.listener.call_changed(conn, before, after)
            return after

    async def list_calls(self, org_id: UUID, *, status: str | None = None, campaign_id: UUID | None = None,
                         since: datetime | None = None, until: datetime | None = None, limit: int = 50,
                         after: tuple[datetime, UUID] | None = None, direction: str | None = None) -> CallPage:
        where = Where("org_id = {}", org_id)
        where.when(status, "status = {}")
        where.when(campaign_id, "campaign_id = {}")
        where.when(direction, "direction = {}")
        where.when(since, "created_at >= {}")
        where.when(until, "created_at < {}")
        if after is not None:
            where.add("(created_at, id) < ({}, {})", *after)
        sql = f"SELECT * FROM calls WHERE {where} ORDER BY created_at DESC, id DESC LIMIT {where.arg(limit + 1)}"
        rows = await self.db.fetch(sql, *where.args)
        calls = [self.codec.call(r) for r in rows[:limit]]
        more = len(rows) > limit
        cursor = (calls[-1].created_at, calls[-1].id) if more and calls else None
        return CallPage(calls=tuple(calls), next_cursor=cursor)

    async def list_live_calls(self, org_id: UUID, *, limit: int = 200) -> list[Call]:
        return await self._many(
            f"SELECT * FROM calls WHERE org_id = $1 AND status IN {LIVE_STATUSES_SQL}"
            " ORDER BY created_at DESC, id DESC LIMIT $2", org_id, limit)
