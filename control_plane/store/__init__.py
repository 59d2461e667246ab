"""Records storage: PostgreSQL (``DATABASE_URL``) or embedded SQLite under ``data_dir``.

:func:`open_repository` gives a :class:`Repository`: one repository per aggregate
(:mod:`.repository` lists them) over one :class:`~.db.Database`.
"""

from __future__ import annotations

from typing import Any

from ..crypto import DataKeys, load_data_keys
from .calls import CallCodec, CallMutation, CallRepository
from .db import Conflict, Conn, Database, StoreError, json_column
from .dnc import DncRepository
from .erasure import ErasureRepository, ErasureResult
from .events import EventRepository
from .migrate import MigrationError, check_current, migrate, sqlite_path
from .numbers import PhoneNumberRepository
from .organisations import OrganisationRepository
from .postgres import PostgresDatabase
from .records import (
    CALL_STATUSES,
    TERMINAL_STATUSES,
    ApiKey,
    Call,
    CallPage,
    CallStatus,
    DncEntry,
    Erasure,
    EventSummary,
    Organisation,
    PhoneNumber,
    StatusChange,
    StoredEvent,
    Turn,
    utcnow,
)
from .repository import Repository
from .sqlite import SqliteDatabase
from .turns import TurnRepository

__all__ = [
    "CALL_STATUSES", "TERMINAL_STATUSES", "ApiKey", "Call", "CallCodec", "CallMutation", "CallPage",
    "CallRepository", "CallStatus", "Conflict", "Conn", "Database", "DncEntry", "DncRepository", "Erasure",
    "ErasureRepository", "ErasureResult", "EventRepository", "EventSummary", "MigrationError", "Organisation",
    "OrganisationRepository", "PhoneNumber", "PhoneNumberRepository", "Repository", "StatusChange", "StoreError",
    "StoredEvent", "Turn", "TurnRepository", "check_current", "migrate", "open_database", "open_repository",
    "json_column", "sqlite_path", "utcnow",
]


async def open_database(settings: Any) -> Database:
    """The configured database, migrated (``store.auto_migrate``) or checked to be current."""
    if settings.store.auto_migrate:
        await migrate(settings)
    else:
        await check_current(settings)
    if settings.database_url is not None:
        return await PostgresDatabase.connect(settings)
    return await SqliteDatabase.open(sqlite_path(settings))


async def open_repository(settings: Any, *, keys: DataKeys | None = None) -> Repository:
    """The configured store's repositories (see :func:`open_database`)."""
    keys = keys or load_data_keys(settings)
    return Repository(await open_database(settings), keys)
