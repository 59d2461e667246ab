"""Liveness and readiness, answered separately.

``/healthz`` (liveness) says the process and its event loop answer, and nothing more: a
restart would not cure a database outage, so an orchestrator must not restart for one.
``/readyz`` (readiness) says this instance should be sent traffic: the store and Redis
answer, Telnyx is configured, and it is not draining. The campaign worker serves both on its
``--metrics-port`` (:func:`dialer_readiness`: it can place calls). Each check reports ``ok``,
``not_used`` (an optional part this deployment does without), or why it failed, by
exception type only: messages can carry connection URLs and their passwords.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .services import ControlPlane

CHECK_TIMEOUT_S = 2.0
"""Each dependency answers within this or counts as unreachable (a probe must not hang)."""

OK = "ok"
NOT_USED = "not_used"


async def _within_deadline(check: Awaitable[str]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await check
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"


async def _database(cp: ControlPlane) -> str:
    if not cp.store_exists():
        return NOT_USED  # the embedded store is created on first use, not by a probe
    repo = await cp.repository()
    async with repo.connection() as conn:
        await conn.fetchrow("SELECT 1 AS one")
    return OK


async def _redis(cp: ControlPlane) -> str:
    if cp.redis is None:
        return NOT_USED
    await cp.redis.ping()
    return OK


def _telnyx(cp: ControlPlane, *, webhooks: bool = True) -> str:
    settings = cp.settings
    missing = [name for name, value in (
        ("TELNYX_API_KEY", settings.telnyx_api_key),
        ("TELNYX_PUBLIC_KEY", settings.telnyx_public_key if webhooks else "not needed"),
        ("TELNYX_CONNECTION_ID", settings.telnyx_connection_id),
        ("CALLAGENT_SERVER__PUBLIC_URL", settings.server.public_url),
    ) if not value]
    return "missing " + ", ".join(missing) if missing else OK


async def readiness(cp: ControlPlane) -> tuple[bool, dict[str, str]]:
    """Whether this instance should get traffic, and each check's result."""
    database, redis = await asyncio.gather(_within_deadline(_database(cp)), _within_deadline(_redis(cp)))
    checks = {
        "database": database,
        "redis": redis,
        "telnyx": _telnyx(cp),
        "accepting": "draining" if cp.draining else OK,
    }
    return all(value in (OK, NOT_USED) for value in checks.values()), checks


async def dialer_readiness(cp: ControlPlane, *, webhooks: bool = False) -> tuple[bool, dict[str, str]]:
    """Whether a campaign worker process can place calls: the store (its queue, PostgreSQL) and
    Redis (shared pacing, sessions) answer, Telnyx dials are configured (the webhook key only
    when it processes webhooks too), and its dialer runs and is not stopping."""
    database, redis = await asyncio.gather(_within_deadline(_database(cp)), _within_deadline(_redis(cp)))
    dialer = "draining" if cp.draining else (OK if cp.campaigns.dialer.running else "not running")
    checks = {"database": database, "redis": redis, "telnyx": _telnyx(cp, webhooks=webhooks), "dialer": dialer}
    return all(value in (OK, NOT_USED) for value in checks.values()), checks
