"""PostgreSQL: an asyncpg pool sized from settings; row locks with ``FOR UPDATE``.

Works on plain PostgreSQL 13+ and Supabase. Behind a transaction-mode pooler (Supabase
port 6543) set ``CALLAGENT_STORE__STATEMENT_CACHE_SIZE=0`` and leave ``schema_name``
unset (a pooler does not keep per-session ``search_path``); run migrations through a
direct connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson

from ..jsonutil import dumps, without_nul
from .db import Conn, Database, StoreError


def _dumps(value: Any) -> str:
    return dumps(without_nul(value)).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("jsonb", "json"):
        await conn.set_type_codec(name, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


class _PgConn:
    __slots__ = ("_c",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._c = conn

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._c.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        row = await self._c.fetchrow(sql, *args)
        return None if row is None else dict(row)

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._c.execute(sql, *args)
        try:
            return int(status.rsplit(" ", 1)[-1])
        except (ValueError, AttributeError):
            return 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._c.executemany(sql, rows)


class PostgresDatabase(Database):
    dialect = "postgres"
    for_update = "FOR UPDATE"
    for_no_key_update = "FOR NO KEY UPDATE"
    skip_locked = "FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, settings: Any) -> PostgresDatabase:
        store = settings.store
        server_settings = {"application_name": "callagent"}
        if store.schema_name:
            server_settings["search_path"] = store.schema_name
        try:
            pool = await asyncpg.create_pool(
                settings.database_url.get_secret_value(),
                min_size=min(store.pool_min_size, store.pool_max_size),
                max_size=store.pool_max_size,
                statement_cache_size=store.statement_cache_size,
                command_timeout=store.command_timeout_s,
                server_settings=server_settings,
                init=_init_connection,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from None
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        async with self.pool.acquire() as conn:
            yield _PgConn(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PgConn(conn)

    @staticmethod
    def is_unique_violation(exc: BaseException) -> bool:
        return isinstance(exc, asyncpg.UniqueViolationError)
