"""The SQL seam every repository writes through: one connection protocol, two dialects.

Repositories hold SQL text with ``$n`` placeholders and run it through a :class:`Database`
(``fetch`` / ``fetchrow`` / ``execute``, or a :meth:`~Database.connection` /
:meth:`~Database.transaction` for several statements). :mod:`.postgres` and :mod:`.sqlite`
supply the connections and the few places the dialects differ: row locks
(:attr:`~Database.for_update`, :attr:`~Database.skip_locked`) and how a unique
violation is recognised. So one SQL text serves both backends.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

import orjson


class StoreError(RuntimeError):
    """The store is unreachable, misconfigured or not migrated."""


class Conflict(StoreError):
    """A unique constraint refused the write (the thing already exists)."""


class Conn(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...
    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None: ...
    async def execute(self, sql: str, *args: Any) -> int: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Database(abc.ABC):
    """A pool (PostgreSQL) or a single connection (SQLite) speaking :class:`Conn`."""

    dialect: str
    for_update = ""  # "FOR UPDATE" where the dialect has row locks
    for_no_key_update = ""  # the weaker lock, for rows others reference by foreign key
    skip_locked = ""  # "FOR UPDATE SKIP LOCKED" where concurrent claimers can skip each other's rows

    @abc.abstractmethod
    def connection(self) -> AbstractAsyncContextManager[Conn]: ...

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Conn]: ...

    def reading(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for read-only queries that must not queue behind writes (searches inside a
        turn). A pool hands out any connection; SQLite overrides it with its own reader."""
        return self.connection()

    @abc.abstractmethod
    async def close(self) -> None: ...

    @staticmethod
    @abc.abstractmethod
    def is_unique_violation(exc: BaseException) -> bool: ...

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self.connection() as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        async with self.connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self.connection() as conn:
            return await conn.execute(sql, *args)


def json_column(value: Any) -> Any:
    """JSON columns: dicts from asyncpg's codec, text from SQLite."""
    if isinstance(value, (str, bytes)):
        return orjson.loads(value)
    return value


def time_column(value: Any) -> datetime:
    """Timestamp columns: datetimes from asyncpg, ISO text from SQLite."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def placeholders(n: int, start: int = 1) -> str:
    """``$start, ..., $(start+n-1)``."""
    return ", ".join(f"${start + i}" for i in range(n))


class Where:
    """A ``WHERE`` clause of optional filters and its arguments, for list queries.

    Every value becomes the next ``$n`` (numbered by position in :attr:`args`), the one placeholder
    form both backends take: asyncpg natively, SQLite as ``?n`` (:mod:`.sqlite` rewrites it;
    numbered, not bare ``?``, so a value may be referred to out of order or twice). Values never
    enter the SQL text::

        where = Where("org_id = {}", org_id)
        where.when(status, "status = {}")
        rows = await db.fetch(f"SELECT * FROM calls WHERE {where} LIMIT {where.arg(50)}", *where.args)
    """

    __slots__ = ("args", "clauses")

    def __init__(self, clause: str, *values: Any) -> None:
        self.args: list[Any] = []
        self.clauses: list[str] = []
        self.add(clause, *values)

    def arg(self, value: Any) -> str:
        """Bind ``value`` as the next parameter; returns its placeholder."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str, *values: Any) -> None:
        """``clause`` with one ``{}`` per value, each bound as the next parameter."""
        self.clauses.append(clause.format(*(self.arg(v) for v in values)))

    def when(self, value: Any, clause: str) -> None:
        """The filter ``clause`` (one ``{}``) on ``value``, unless ``value`` is None (not filtered)."""
        if value is not None:
            self.add(clause, value)

    def __str__(self) -> str:
        return " AND ".join(self.clauses)
