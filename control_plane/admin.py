"""Operator functions for the command line (``callagent org create NAME`` and friends).

Each opens the configured store (``Settings()`` unless given), migrates it if
``store.auto_migrate`` allows, does one thing and closes it. API keys are returned in
clear exactly once, at creation; the store keeps only their hash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from . import gdpr, redisconn
from .auth import issue_api_key
from .knowledge.store import knowledge_store
from .numbers import ORGANISATION_SETTINGS, reconfigure_number, register_number, update_settings
from .phone import normalize_e164
from .sessions import RedisSessionStore
from .settings import Settings
from .store import ApiKey, Organisation, PhoneNumber, Repository, open_repository
from .store.erasure import OrganisationBusy

__all__ = [
    "ORGANISATION_SETTINGS", "OrganisationBusy", "add_phone_number", "create_api_key", "create_organisation",
    "erase_organisation", "get_organisation",
    "list_api_keys", "list_organisations", "list_phone_numbers", "remove_phone_number", "revoke_api_key",
    "update_phone_number",
    "set_organisation_settings",
]

@asynccontextmanager
async def _store(settings: Settings | None) -> AsyncIterator[Repository]:
    repo = await open_repository(settings or Settings())
    try:
        yield repo
    finally:
        await repo.close()


async def create_organisation(name: str, *, settings: Settings | None = None,
                              key_name: str = "default") -> tuple[Organisation, str]:
    """A new organisation and its first API key (the secret: show it once)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("organisation name must be 1-200 characters")
    async with _store(settings) as repo:
        org = await repo.create_organisation(name)
        _, secret = await issue_api_key(repo, org.id, key_name)
        return org, secret


async def list_organisations(*, settings: Settings | None = None) -> list[Organisation]:
    async with _store(settings) as repo:
        return await repo.list_organisations()


async def create_api_key(org_id: UUID, name: str = "api", *, settings: Settings | None = None
                         ) -> tuple[ApiKey, str]:
    async with _store(settings) as repo:
        if await repo.get_organisation(org_id) is None:
            raise LookupError(f"no organisation {org_id}")
        return await issue_api_key(repo, org_id, name)


async def list_api_keys(org_id: UUID, *, settings: Settings | None = None) -> list[ApiKey]:
    async with _store(settings) as repo:
        return await repo.list_api_keys(org_id)


async def revoke_api_key(org_id: UUID, key_id: UUID, *, settings: Settings | None = None) -> ApiKey | None:
    """Revoke one key (``None`` if the organisation has no such key). The CLI may revoke the last one."""
    async with _store(settings) as repo:
        return await repo.revoke_api_key(org_id, key_id)


async def add_phone_number(org_id: UUID, number: str, agent_config: dict[str, Any] | None = None, *,
                           settings: Settings | None = None) -> PhoneNumber:
    """Register a number the organisation owns; inbound calls to it are answered by the default
    agent (``settings.agent``) with ``agent_config``'s overrides. Raises ``ApiError`` (400 or 422) for
    an invalid agent config, ``InvalidPhoneNumber`` for a number that is not E.164, ``NumberTaken``."""
    settings = settings or Settings()
    async with _store(settings) as repo:
        if await repo.get_organisation(org_id) is None:
            raise LookupError(f"no organisation {org_id}")
        return await register_number(repo, settings, org_id, number, agent_config)


async def update_phone_number(org_id: UUID, number: str, agent_config: dict[str, Any], *,
                              settings: Settings | None = None) -> PhoneNumber | None:
    """Replace the agent config of one of the organisation's numbers (``None``: no such number)."""
    settings = settings or Settings()
    async with _store(settings) as repo:
        return await reconfigure_number(repo, settings, org_id, number, agent_config)


async def remove_phone_number(org_id: UUID, number: str, *, settings: Settings | None = None) -> bool:
    async with _store(settings) as repo:
        return await repo.remove_phone_number(org_id, normalize_e164(number))


async def list_phone_numbers(org_id: UUID, *, settings: Settings | None = None) -> list[PhoneNumber]:
    async with _store(settings) as repo:
        return await repo.list_phone_numbers(org_id)


async def get_organisation(org_id: UUID, *, settings: Settings | None = None) -> Organisation | None:
    async with _store(settings) as repo:
        return await repo.get_organisation(org_id)


async def set_organisation_settings(org_id: UUID, *, settings: Settings | None = None, **changes: Any
                                    ) -> Organisation:
    """E.g. ``set_organisation_settings(org_id, record_calls=True)``; ``None`` resets a setting."""
    settings = settings or Settings()
    async with _store(settings) as repo:
        org = await update_settings(repo, org_id, changes, settings=settings)
        if org is None:
            raise LookupError(f"no organisation {org_id}")
        return org


async def erase_organisation(org_id: UUID, *, settings: Settings | None = None,
                             force: bool = False) -> gdpr.OrganisationErasure | None:
    """Delete the organisation and everything it owns, its knowledge bases included (``None``: no such
    organisation); its calls' sessions go from Redis when one is configured. Raises
    ``gdpr.OrganisationBusy`` while a call is up or a campaign runs, unless ``force``."""
    settings = settings or Settings()
    async with _store(settings) as repo:
        redis = None
        sessions = None
        if settings.redis_url is not None:
            redis = redisconn.connect(settings.redis_url.get_secret_value())
            sessions = RedisSessionStore(redis, settings.redis_key_prefix, settings.session_ttl_s, repo.keys.cipher)
        try:
            return await gdpr.erase_organisation(repo, knowledge_store(repo), sessions, org_id, force=force)
        finally:
            if redis is not None:
                await redis.aclose()
