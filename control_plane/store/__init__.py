"""Records storage: PostgreSQL (``DATABASE_URL``) or embedded SQLite under ``data_dir``."""

from __future__ import annotations

from typing import Any

from ..crypto import DataKeys, load_data_keys
from .base import Conflict, ErasureResult, Repository, StoreError
from .migrate import MigrationError, check_current, migrate, sqlite_path
from .records import (
    CALL_STATUSES,
    TERMINAL_STATUSES,
    ApiKey,
    Call,
    CallPage,
    CallStatus,
    Campaign,
    CampaignContact,
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

__all__ = [
    "CALL_STATUSES", "TERMINAL_STATUSES", "ApiKey", "Call", "CallPage", "CallStatus", "Campaign",
    "CampaignContact", "Conflict", "DncEntry", "Erasure", "ErasureResult", "EventSummary", "MigrationError",
    "Organisation", "PhoneNumber", "Repository", "StatusChange", "StoreError", "StoredEvent", "Turn",
    "check_current", "migrate", "open_repository", "sqlite_path", "utcnow",
]


async def open_repository(settings: Any, *, keys: DataKeys | None = None) -> Repository:
    """The configured store, migrated (``store.auto_migrate``) or checked to be current."""
    keys = keys or load_data_keys(settings)
    if settings.store.auto_migrate:
        await migrate(settings)
    else:
        await check_current(settings)
    if settings.database_url is not None:
        from .postgres import PostgresRepository

        return await PostgresRepository.connect(settings, keys)
    from .sqlite import SqliteRepository

    return await SqliteRepository.open(sqlite_path(settings), keys)
