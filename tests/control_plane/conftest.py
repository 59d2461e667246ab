"""Control-plane test fixtures: real PostgreSQL and Redis, isolated per test session.

PostgreSQL: a fresh schema with a random name per session (``search_path`` points there;
dropped at the end). Redis: a random key prefix (its keys deleted at the end). Both
services are required: a test that needs one fails with the reason when it is down.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from control_plane.crypto import generate_key
from control_plane.settings import Settings

from .fakes import PUBLIC_URL, WEBHOOK_PUBLIC_KEY

PG_URL = os.environ.get("CALLAGENT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CALLAGENT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

ENCRYPTION_KEY = generate_key()
LOOKUP_KEY = generate_key()


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    schema = "cp_test_" + secrets.token_hex(6)
    try:
        asyncio.run(_pg_admin(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is unreachable at {PG_URL} ({type(exc).__name__}: {exc}); start it or set "
            "CALLAGENT_TEST_DATABASE_URL",
            pytrace=False,
        )
    try:
        yield schema
    finally:
        asyncio.run(_pg_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest_asyncio.fixture
async def own_pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL schema for this test alone, for a test that asserts about the whole database
    (the session's schema holds what every other test left, in whatever order they ran)."""
    schema = "cp_own_" + secrets.token_hex(6)
    try:
        await _pg_admin(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:
        pytest.fail(f"PostgreSQL is unreachable at {PG_URL} ({type(exc).__name__}: {exc})", pytrace=False)
    try:
        yield schema
    finally:
        await _pg_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _redis_cleanup(prefix: str) -> int:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


async def _redis_ping() -> None:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"cp_test_{secrets.token_hex(6)}:"
    try:
        asyncio.run(_redis_ping())
    except Exception as exc:
        pytest.fail(
            f"Redis is unreachable at {REDIS_URL} ({type(exc).__name__}: {exc}); start it or set "
            "CALLAGENT_TEST_REDIS_URL",
            pytrace=False,
        )
    try:
        yield prefix
    finally:
        asyncio.run(_redis_cleanup(prefix))


def make_settings(tmp_path: Path, *, backend: str = "sqlite", pg_schema: str | None = None,
                  redis_prefix: str | None = None, **overrides: Any) -> Settings:
    """Settings for one test: its own data_dir, fixed test keys, the chosen backend."""
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "encryption_key": ENCRYPTION_KEY,
        "lookup_hash_key": LOOKUP_KEY,
        "database_url": None,
        "redis_url": None,
        "telnyx_api_key": None,
        "telnyx_public_key": WEBHOOK_PUBLIC_KEY,
        "telnyx_connection_id": "1234567890",
        "stream_auth_token": None,
        "server": {"public_url": PUBLIC_URL},
    }
    if backend == "postgres":
        assert pg_schema, "the postgres backend needs the pg_schema fixture"
        values["database_url"] = PG_URL
        values["store"] = {"schema_name": pg_schema, "pool_min_size": 1, "pool_max_size": 4}
    for name in ("server", "store", "api", "webhooks"):
        if isinstance(overrides.get(name), dict) and isinstance(values.get(name), dict):
            overrides[name] = {**values[name], **overrides[name]}
    if redis_prefix is not None:
        values["redis_url"] = REDIS_URL
        values["redis_key_prefix"] = redis_prefix + secrets.token_hex(4) + ":"
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings for the parametrized backend (PostgreSQL only pulls in its fixture when needed)."""
    schema = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    return make_settings(tmp_path, backend=backend, pg_schema=schema)
