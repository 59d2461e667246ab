"""A call's turns: what each side said (sealed), the turn's latency figures and how it ended."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from ..crypto import DataKeys
from .db import Conn, Database, json_column, placeholders, time_column
from .hooks import ChangeHooks
from .records import Turn


class TurnRepository(abc.ABC):
    @abc.abstractmethod
    async def upsert_turn(self, turn: Turn) -> Turn: ...
    @abc.abstractmethod
    async def list_turns(self, call_id: UUID) -> list[Turn]: ...
    @abc.abstractmethod
    async def last_turn_latencies(self, call_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        """Each call's latest turn's latency figures (calls without turns left out), in one query."""
    @abc.abstractmethod
    async def list_turn_latencies(self, org_id: UUID, *, since: datetime, calls_since: datetime,
                                  limit: int) -> list[tuple[datetime, dict[str, Any]]]:
        """(created_at, latency figures) of the organisation's turns since ``since``, oldest first, of
        calls created since ``calls_since`` (the calls index bounds the scan; no transcript is opened)."""


class SqlTurnRepository(TurnRepository):
    def __init__(self, db: Database, keys: DataKeys, hooks: ChangeHooks | None = None) -> None:
        self.db = db
        self._cipher = keys.cipher
        self.hooks = hooks or ChangeHooks()

    def _turn(self, row: dict[str, Any]) -> Turn:
        return Turn(
            call_id=row["call_id"], org_id=row["org_id"], index=row["idx"],
            caller_text=self._cipher.open(row["caller_text_enc"], "turns.caller_text"),
            agent_text=self._cipher.open(row["agent_text_enc"], "turns.agent_text"),
            interrupted=bool(row["interrupted"]), latency=json_column(row["latency"]), created_at=row["created_at"],
            end_reason=row["end_reason"], hold=row["hold"], contour=bool(row["contour"]),
            speculation=row["speculation"], merged=bool(row["merged"]),
        )

    async def upsert_turn(self, turn: Turn) -> Turn:
        async with self.db.transaction() as conn:
            if self.hooks.listener is not None:
                # First: it may lock the call row, which the turn's foreign key would otherwise
                # have share-locked already (upgrading that lock deadlocks with update_call).
                await self.hooks.listener.turn_recorded(conn, turn)
            await self._write(conn, turn)
        return turn

    async def _write(self, conn: Conn, turn: Turn) -> None:
        await conn.execute(
            "INSERT INTO turns (call_id, idx, org_id, caller_text_enc, agent_text_enc, interrupted, latency,"
            " created_at, end_reason, hold, contour, speculation, merged) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
            " $9, $10, $11, $12, $13) ON CONFLICT (call_id, idx) DO UPDATE SET"
            " caller_text_enc = excluded.caller_text_enc, agent_text_enc = excluded.agent_text_enc,"
            " interrupted = excluded.interrupted,"
            " latency = excluded.latency, end_reason = excluded.end_reason, hold = excluded.hold,"
            " contour = excluded.contour, speculation = excluded.speculation, merged = excluded.merged",
            turn.call_id, turn.index, turn.org_id, self._cipher.seal(turn.caller_text, "turns.caller_text"),
            self._cipher.seal(turn.agent_text, "turns.agent_text"), turn.interrupted, turn.latency, turn.created_at,
            turn.end_reason, turn.hold, turn.contour, turn.speculation, turn.merged,
        )

    async def list_turns(self, call_id: UUID) -> list[Turn]:
        rows = await self.db.fetch("SELECT * FROM turns WHERE call_id = $1 ORDER BY idx", call_id)
        return [self._turn(r) for r in rows]

    async def last_turn_latencies(self, call_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        if not call_ids:
            return {}
        rows = await self.db.fetch(
            "SELECT t.call_id AS call_id, t.latency AS latency FROM turns t JOIN (SELECT call_id, max(idx) AS idx"
            f" FROM turns WHERE call_id IN ({placeholders(len(call_ids))}) GROUP BY call_id) last"
            " ON t.call_id = last.call_id AND t.idx = last.idx", *call_ids)
        return {r["call_id"] if isinstance(r["call_id"], UUID) else UUID(r["call_id"]): json_column(r["latency"])
                for r in rows}

    async def list_turn_latencies(self, org_id: UUID, *, since: datetime, calls_since: datetime,
                                  limit: int) -> list[tuple[datetime, dict[str, Any]]]:
        rows = await self.db.fetch(
            "SELECT t.created_at AS at, t.latency AS latency FROM calls c JOIN turns t ON t.call_id = c.id"
            " WHERE c.org_id = $1 AND c.created_at >= $2 AND t.created_at >= $3"
            " ORDER BY t.created_at DESC LIMIT $4", org_id, calls_since, since, limit)
        return [(time_column(r["at"]), json_column(r["latency"])) for r in reversed(rows)]
