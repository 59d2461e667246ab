"""The do-not-call list: per organisation, by keyed hash only (the number itself is never stored)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from uuid import UUID

from ..crypto import DataKeys
from .db import Database
from .records import DncEntry, utcnow


class DncRepository(abc.ABC):
    @abc.abstractmethod
    async def add_dnc(self, org_id: UUID, phone: str, *, reason: str | None = None, source: str = "api") -> bool: ...
    @abc.abstractmethod
    async def add_dnc_many(self, org_id: UUID, entries: Sequence[tuple[str, str | None]], *, source: str) -> int: ...
    @abc.abstractmethod
    async def remove_dnc(self, org_id: UUID, phone: str) -> bool: ...
    @abc.abstractmethod
    async def get_dnc(self, org_id: UUID, phone: str) -> DncEntry | None: ...


class SqlDncRepository(DncRepository):
    def __init__(self, db: Database, keys: DataKeys) -> None:
        self.db = db
        self._hasher = keys.hasher

    async def add_dnc(self, org_id: UUID, phone: str, *, reason: str | None = None, source: str = "api") -> bool:
        row = await self.db.fetchrow(
            "INSERT INTO dnc_entries (org_id, phone_hash, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (org_id, phone_hash) DO NOTHING RETURNING phone_hash",
            org_id, self._hasher.phone(phone), reason, source, utcnow(),
        )
        return row is not None

    async def add_dnc_many(self, org_id: UUID, entries: Sequence[tuple[str, str | None]], *, source: str) -> int:
        now = utcnow()
        rows = [(org_id, self._hasher.phone(phone), reason, source, now) for phone, reason in entries]
        async with self.db.transaction() as conn:
            before = await conn.fetchrow("SELECT count(*) AS n FROM dnc_entries WHERE org_id = $1", org_id)
            await conn.executemany(
                "INSERT INTO dnc_entries (org_id, phone_hash, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (org_id, phone_hash) DO NOTHING",
                rows,
            )
            after = await conn.fetchrow("SELECT count(*) AS n FROM dnc_entries WHERE org_id = $1", org_id)
        return int(after["n"]) - int(before["n"])  # type: ignore[index]

    async def remove_dnc(self, org_id: UUID, phone: str) -> bool:
        n = await self.db.execute("DELETE FROM dnc_entries WHERE org_id = $1 AND phone_hash = $2",
                                  org_id, self._hasher.phone(phone))
        return n > 0

    async def get_dnc(self, org_id: UUID, phone: str) -> DncEntry | None:
        row = await self.db.fetchrow("SELECT * FROM dnc_entries WHERE org_id = $1 AND phone_hash = $2",
                                     org_id, self._hasher.phone(phone))
        return None if row is None else DncEntry.model_validate(row)
