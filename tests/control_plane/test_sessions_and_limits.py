"""Session stores (Redis and in-process) and rate limiters (sliding window, shared through Redis)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as redis

from control_plane.crypto import DecryptionError, generate_key, load_data_keys
from control_plane.ratelimit import MemoryRateLimiter, RedisRateLimiter
from control_plane.sessions import CallSession, MemorySessionStore, RedisSessionStore

from .conftest import REDIS_URL, make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _session(ccid: str) -> CallSession:
    return CallSession(call_control_id=ccid, call_id=uuid.uuid4(), org_id=uuid.uuid4(),
                       metadata={"to": "+14155550123", "direction": "outbound"},
                       history=[{"role": "user", "content": "my name is Zebedee"},
                                {"role": "assistant", "content": "hello Zebedee"}],
                       agent_state={"stage": "greeting", "slots": {"date": None}})


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_session_store_save_load_delete(kind, tmp_path, redis_prefix):
    client = redis.from_url(REDIS_URL)
    try:
        if kind == "redis":
            store = RedisSessionStore(client, redis_prefix, 3600, load_data_keys(make_settings(tmp_path)).cipher)
        else:
            store = MemorySessionStore(3600)
        ccid = f"v3:{uuid.uuid4().hex}"
        assert await store.load(ccid) is None
        session = _session(ccid)
        await store.save(session)
        assert await store.load(ccid) == session
        changed = session.model_copy(update={"history": [*session.history, {"role": "user", "content": "bye"}]})
        await store.save(changed)
        assert (await store.load(ccid)).history[-1] == {"role": "user", "content": "bye"}
        assert await store.delete(ccid) is True
        assert await store.load(ccid) is None
        assert await store.delete(ccid) is False
    finally:
        await client.aclose()


async def test_redis_session_key_ttl_and_sealing(tmp_path, redis_prefix):
    client = redis.from_url(REDIS_URL)
    try:
        cipher = load_data_keys(make_settings(tmp_path)).cipher
        store = RedisSessionStore(client, redis_prefix, 3600, cipher)
        ccid = f"v3:{uuid.uuid4().hex}"
        await store.save(_session(ccid))
        key = f"{redis_prefix}call:{{{ccid}}}:session"  # the call control id is its hash tag
        assert store.key(ccid) == key
        assert 3590 <= await client.ttl(key) <= 3600
        raw = await client.get(key)
        assert b"Zebedee" not in raw and b"14155550123" not in raw  # transcripts are sealed at rest
        other_keys = load_data_keys(make_settings(tmp_path, encryption_key=generate_key(),
                                                  lookup_hash_key=generate_key()))
        other = RedisSessionStore(client, redis_prefix, 3600, other_keys.cipher)
        with pytest.raises(DecryptionError):
            await other.load(ccid)  # another key cannot open it
    finally:
        await client.aclose()


async def test_memory_session_store_expires():
    clock = Clock()
    store = MemorySessionStore(60, clock=clock)
    await store.save(_session("v3:a"))
    clock.now += 59
    assert await store.load("v3:a") is not None
    clock.now += 2
    assert await store.load("v3:a") is None


async def test_memory_rate_limiter_is_a_sliding_window():
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    results = []
    for offset in (0, 20, 40):
        clock.now = 1000 + offset
        results.append((await limiter.hit("org", 3, 60)).allowed)
    clock.now = 1059
    denied = await limiter.hit("org", 3, 60)
    assert results == [True, True, True] and not denied.allowed and denied.retry_after_s == pytest.approx(1.0)
    assert (await limiter.hit("other", 3, 60)).allowed
    clock.now = 1060.5  # the first hit left the window; the other two are still in it
    assert (await limiter.hit("org", 3, 60)).allowed
    assert not (await limiter.hit("org", 3, 60)).allowed
    assert denied.retry_after_header == "1"


async def test_redis_rate_limiter_is_atomic_across_clients(redis_prefix):
    clients = [redis.from_url(REDIS_URL) for _ in range(2)]
    try:
        prefix = redis_prefix + uuid.uuid4().hex[:6] + ":"
        limiters = [RedisRateLimiter(c, prefix) for c in clients]
        decisions = await asyncio.gather(*(limiters[i % 2].hit("org-1", 5, 60) for i in range(20)))
        assert sum(d.allowed for d in decisions) == 5
        denied = [d for d in decisions if not d.allowed]
        assert all(0 < d.retry_after_s <= 60 for d in denied)
        assert (await limiters[0].hit("org-2", 5, 60)).allowed  # keys are per organisation
        assert await clients[0].ttl(f"{prefix}ratelimit:{{org-1}}") > 0  # nothing lingers past the window
    finally:
        for c in clients:
            await c.aclose()
