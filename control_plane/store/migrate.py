"""Numbered plain-SQL migrations, applied once each and recorded in ``schema_migrations``.

Files live in ``control_plane/migrations/<postgres|sqlite>/NNNN_name.sql``. Each pending
file runs in its own transaction together with its ``schema_migrations`` row, so a
failure leaves the previous version intact. PostgreSQL takes an advisory lock first, so
processes starting together apply each migration exactly once. A file changed after it
was applied is refused (its checksum no longer matches): write a new migration instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import StoreError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PG_LOCK_ID = 0x6361_6C6C_6167  # "callag": one advisory lock for every callagent migrator

_TRACKING_TABLE = {
    "postgres": (
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    ),
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " checksum TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
    ),
}


class MigrationError(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        # Line endings normalised: a Windows checkout of the same file is the same migration.
        return hashlib.sha256(self.sql.replace("\r\n", "\n").encode()).hexdigest()


def load_migrations(dialect: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    folder = directory / dialect
    if not folder.is_dir():
        raise MigrationError(
            f"migrations folder {folder} is missing: the package was installed without its SQL files"
        )
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two {dialect} migrations numbered {version:04d}")
        found[version] = Migration(version, match.group(2), path.read_text())
    if not found:
        raise MigrationError(f"no migrations in {folder}")
    return [found[v] for v in sorted(found)]


def _pending(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    known = {m.version for m in migrations}
    for migration in migrations:
        stored = applied.get(migration.version)
        if stored is not None and stored != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                "add a new migration instead of editing an applied one"
            )
    newer = sorted(v for v in applied if v not in known)
    if newer:
        raise MigrationError(f"the database has migrations this code does not know ({newer}): is the code older?")
    return [m for m in migrations if m.version not in applied]


def split_sqlite_script(sql: str) -> list[str]:
    """Statements of a script, split where SQLite itself says a statement is complete."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if statement and not all(part.strip().startswith("--") or not part.strip()
                                      for part in statement.splitlines()):
                statements.append(statement)
            buffer = ""
    if buffer.strip() and not all(p.strip().startswith("--") or not p.strip() for p in buffer.splitlines()):
        raise MigrationError("SQLite migration ends in an incomplete statement")
    return statements


async def migrate_postgres(conn: Any, schema: str | None = None) -> list[int]:
    """Apply pending migrations on an asyncpg connection; returns the versions applied."""
    migrations = load_migrations("postgres")
    if schema:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
    await conn.execute("SELECT pg_advisory_lock($1)", _PG_LOCK_ID)
    try:
        await conn.execute(_TRACKING_TABLE["postgres"])
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {r["version"]: r["checksum"] for r in rows}
        done: list[int] = []
        for migration in _pending(migrations, applied):
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version, migration.name, migration.checksum,
                )
            log.info("applied migration %04d_%s", migration.version, migration.name)
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _PG_LOCK_ID)


async def migrate_sqlite(db: Any) -> list[int]:
    """Apply pending migrations on an aiosqlite connection opened with ``isolation_level=None``."""
    migrations = load_migrations("sqlite")
    await db.execute(_TRACKING_TABLE["sqlite"])
    await db.execute("BEGIN IMMEDIATE")  # the database write lock, for the whole run
    try:
        async with db.execute("SELECT version, checksum FROM schema_migrations") as cursor:
            applied = {row[0]: row[1] for row in await cursor.fetchall()}
        done: list[int] = []
        for migration in _pending(migrations, applied):
            await db.execute(f"SAVEPOINT migration_{migration.version}")
            for statement in split_sqlite_script(migration.sql):
                await db.execute(statement)
            await db.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
                (migration.version, migration.name, migration.checksum),
            )
            await db.execute(f"RELEASE migration_{migration.version}")
            done.append(migration.version)
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    for version in done:
        log.info("applied sqlite migration %04d", version)
    return done


async def migrate(settings: Any) -> list[int]:
    """Bring the configured store (``DATABASE_URL``, else SQLite in ``data_dir``) up to date.

    Idempotent: returns the versions applied by this call (empty when already current).
    """
    if settings.database_url is not None:
        import asyncpg

        conn = await _pg_connect(settings, asyncpg)
        try:
            return await migrate_postgres(conn, settings.store.schema_name)
        finally:
            await conn.close()
    import aiosqlite

    path = sqlite_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        return await migrate_sqlite(db)


async def check_current(settings: Any) -> None:
    """Raise unless every migration is applied (when ``store.auto_migrate`` is off)."""
    if settings.database_url is not None:
        import asyncpg

        conn = await _pg_connect(settings, asyncpg)
        try:
            if settings.store.schema_name:
                await conn.execute(f'SET search_path TO "{settings.store.schema_name}"')
            try:
                rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
            except asyncpg.UndefinedTableError:
                rows = []
            applied = {r["version"]: r["checksum"] for r in rows}
        finally:
            await conn.close()
        dialect = "postgres"
    else:
        import aiosqlite

        async with aiosqlite.connect(sqlite_path(settings)) as db:
            try:
                async with db.execute("SELECT version, checksum FROM schema_migrations") as cursor:
                    applied = {row[0]: row[1] for row in await cursor.fetchall()}
            except sqlite3.OperationalError:
                applied = {}
        dialect = "sqlite"
    pending = _pending(load_migrations(dialect), applied)
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise MigrationError(f"the database is not migrated (pending: {names}); run migrations first")


def sqlite_path(settings: Any) -> Path:
    return Path(settings.data_dir) / settings.store.sqlite_filename


async def _pg_connect(settings: Any, asyncpg: Any) -> Any:
    dsn = settings.database_url.get_secret_value()
    try:
        return await asyncpg.connect(dsn, statement_cache_size=settings.store.statement_cache_size,
                                     timeout=settings.store.command_timeout_s)
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from None
