"""SQLite (the embedded default): one aiosqlite connection, WAL, ``synchronous=FULL``.

All statements go through one connection under an asyncio lock, so a transaction is
never interleaved with another coroutine's statements; that lock is also what stands
in for PostgreSQL's row locks. One process per database file: run several processes
against PostgreSQL.

Read-only queries on a turn's path (knowledge searches) use a second, read-only
connection (:meth:`SqliteDatabase.reading`): in WAL mode a reader never waits for the
writer, so a search does not queue behind every call's fsynced turn and event writes.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import aiosqlite

from ..jsonutil import dumps
from .db import Conn, Database, StoreError

_PLACEHOLDER = re.compile(r"\$(\d+)")


@functools.lru_cache(maxsize=512)
def _translate(sql: str) -> str:
    """``$1`` (asyncpg) -> ``?1`` (SQLite's numbered parameter): one SQL text for both backends."""
    return _PLACEHOLDER.sub(r"?\1", sql)


def to_sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC times")
        # Fixed width, so text order is time order.
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        return dumps(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value


class _SqliteConn:
    __slots__ = ("_db",)

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._db.execute(_translate(sql), [to_sqlite(a) for a in args]) as cursor:
            rows = await cursor.fetchall()
            names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._db.execute(_translate(sql), [to_sqlite(a) for a in args]) as cursor:
            return max(cursor.rowcount, 0)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._db.executemany(_translate(sql), [[to_sqlite(v) for v in row] for row in rows])


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self._lock = asyncio.Lock()
        self._conn = _SqliteConn(db)
        self._reader: _SqliteConn | None = None
        self._reader_db: aiosqlite.Connection | None = None
        self._reader_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
                await db.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path}: {exc}") from None
        return cls(db, path)

    async def close(self) -> None:
        async with self._reader_lock:
            if self._reader_db is not None:
                await self._reader_db.close()
                self._reader_db = self._reader = None
        async with self._lock:
            await self.db.close()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Conn]:
        async with self._reader_lock:
            if self._reader is None:
                try:
                    self._reader_db = await aiosqlite.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                                              isolation_level=None)
                    await self._reader_db.execute("PRAGMA busy_timeout=5000")
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot open SQLite database {self.path} for reading: {exc}") from None
                self._reader = _SqliteConn(self._reader_db)
            yield self._reader

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        async with self._lock:
            yield self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    @staticmethod
    def is_unique_violation(exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)
