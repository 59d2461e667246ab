"""Organisations and their API keys: the tenants, and how a request proves which one it is."""

from __future__ import annotations

import abc
from typing import Any
from uuid import UUID, uuid4

from .db import Conflict, Database, json_column
from .records import ApiKey, Organisation, utcnow


class OrganisationRepository(abc.ABC):
    @abc.abstractmethod
    async def create_organisation(self, name: str) -> Organisation: ...
    @abc.abstractmethod
    async def get_organisation(self, org_id: UUID) -> Organisation | None: ...
    @abc.abstractmethod
    async def list_organisations(self) -> list[Organisation]: ...
    @abc.abstractmethod
    async def update_organisation_settings(self, org_id: UUID, changes: dict[str, Any]) -> Organisation | None:
        """Merge ``changes`` into the organisation's settings (a ``None`` value removes a key)."""
    @abc.abstractmethod
    async def insert_api_key(self, key: ApiKey) -> ApiKey: ...
    @abc.abstractmethod
    async def find_api_key(self, prefix: str) -> ApiKey | None: ...
    @abc.abstractmethod
    async def list_api_keys(self, org_id: UUID) -> list[ApiKey]: ...
    @abc.abstractmethod
    async def revoke_api_key(self, org_id: UUID, key_id: UUID, *, keep_one_active: bool = False) -> ApiKey | None: ...


def _org(row: dict[str, Any]) -> Organisation:
    return Organisation(id=row["id"], name=row["name"], created_at=row["created_at"],
                        settings=json_column(row["settings"]))


class SqlOrganisationRepository(OrganisationRepository):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_organisation(self, name: str) -> Organisation:
        org = Organisation(id=uuid4(), name=name, created_at=utcnow())
        await self.db.execute(
            "INSERT INTO organisations (id, name, settings, created_at) VALUES ($1, $2, $3, $4)",
            org.id, org.name, org.settings, org.created_at,
        )
        return org

    async def get_organisation(self, org_id: UUID) -> Organisation | None:
        row = await self.db.fetchrow("SELECT * FROM organisations WHERE id = $1", org_id)
        return None if row is None else _org(row)

    async def list_organisations(self) -> list[Organisation]:
        rows = await self.db.fetch("SELECT * FROM organisations ORDER BY created_at, id")
        return [_org(row) for row in rows]

    async def update_organisation_settings(self, org_id: UUID, changes: dict[str, Any]) -> Organisation | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(f"SELECT * FROM organisations WHERE id = $1 {self.db.for_update}", org_id)
            if row is None:
                return None
            org = _org(row)
            merged = {k: v for k, v in {**org.settings, **changes}.items() if v is not None}
            await conn.execute("UPDATE organisations SET settings = $2 WHERE id = $1", org_id, merged)
            return org.model_copy(update={"settings": merged})

    async def insert_api_key(self, key: ApiKey) -> ApiKey:
        try:
            await self.db.execute(
                "INSERT INTO api_keys (id, org_id, name, prefix, key_hash, created_at, revoked_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                key.id, key.org_id, key.name, key.prefix, key.key_hash, key.created_at, key.revoked_at,
            )
        except Exception as exc:
            if self.db.is_unique_violation(exc):
                raise Conflict("API key prefix already exists") from None
            raise
        return key

    async def find_api_key(self, prefix: str) -> ApiKey | None:
        row = await self.db.fetchrow("SELECT * FROM api_keys WHERE prefix = $1", prefix)
        return None if row is None else ApiKey.model_validate(row)

    async def list_api_keys(self, org_id: UUID) -> list[ApiKey]:
        rows = await self.db.fetch("SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created_at, id", org_id)
        return [ApiKey.model_validate(r) for r in rows]

    async def revoke_api_key(self, org_id: UUID, key_id: UUID, *, keep_one_active: bool = False) -> ApiKey | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(f"SELECT * FROM api_keys WHERE id = $1 AND org_id = $2 {self.db.for_update}",
                                      key_id, org_id)
            if row is None:
                return None
            key = ApiKey.model_validate(row)
            if key.revoked_at is not None:
                return key
            if keep_one_active:
                others = await conn.fetchrow(
                    "SELECT count(*) AS n FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL AND id <> $2",
                    org_id, key_id,
                )
                if not others or int(others["n"]) == 0:
                    raise Conflict("this is the organisation's last active API key")
            now = utcnow()
            await conn.execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1", key_id, now)
            return key.model_copy(update={"revoked_at": now})
