"""Redis Cluster: every Redis user of the control plane works against a real local cluster
(three masters started by the test), the keys one operation touches share a slot, and
``redis+cluster://`` picks the cluster client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster

from control_plane import redisconn
from control_plane.campaigns.pacing import RedisPacer
from control_plane.dashboard.sessions import DashboardSession, RedisDashboardSessions
from control_plane.health import readiness
from control_plane.ratelimit import RedisRateLimiter
from control_plane.replay import RedisReplayStore
from control_plane.sessions import RedisSessionStore
from control_plane.settings import Settings
from control_plane.streamleases import RedisStreamLeases
from tests.fixtures.waiting import eventually

from .conftest import make_settings
from .fakes import harness, signed_webhook
from .rediscluster import local_cluster


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_cluster(Path(tmp_path_factory.mktemp("redis-cluster"))) as url:
        yield url


def test_the_url_scheme_picks_the_client():
    assert isinstance(redisconn.connect("redis+cluster://127.0.0.1:7000"), RedisCluster)
    assert isinstance(redisconn.connect("rediss+cluster://127.0.0.1:7000"), RedisCluster)
    assert isinstance(redisconn.connect("redis://127.0.0.1:6379/0"), redis.Redis)
    assert redisconn.is_cluster_url("REDIS+CLUSTER://h:1") and not redisconn.is_cluster_url("redis://h:1")


def test_a_key_prefix_with_a_hash_tag_is_refused():
    with pytest.raises(ValidationError, match="redis_key_prefix"):
        Settings(_env_file=None, redis_key_prefix="callagent:{all}:")


async def _slot(client: RedisCluster, key: str) -> int:
    return int(await client.cluster_keyslot(key))


async def test_stream_leases_work_across_slots_and_keep_a_calls_keys_together(cluster_url):
    client = redisconn.connect(cluster_url)
    try:
        a = RedisStreamLeases(client, "t:" + uuid.uuid4().hex[:6] + ":")
        b = RedisStreamLeases(client, a._prefix)  # another instance, same deployment
        calls = [uuid.uuid4() for _ in range(24)]
        slots = {await _slot(client, a._key(call)) for call in calls}
        assert len(slots) > 1  # the calls spread over the cluster
        for call in calls:  # a call's lease and its attempts counter: one slot
            assert await _slot(client, a._key(call)) == await _slot(client, a._key(call) + ":attempts")
        assert await a.held(calls) == set()
        for call in calls:
            assert await a.claim(call, "a:recovering", 5) == 1  # two keys, one script
            assert await b.claim(call, "b:recovering", 5) is None
        # a's leases lapse (shortened to 1 ms: a short TTL from the start could lapse before b's try
        # on a loaded machine); then b's claim is each call's second attempt.
        for call in calls:
            await a.release(call, "a:recovering", 0.001)

        async def lapsed() -> bool:
            return await a.held(calls) == set()

        await eventually(lapsed, what="a's shortened leases lapse in Redis")
        assert [await b.claim(call, "b:recovering", 5) for call in calls] == [2] * len(calls)
        for call in calls[:12]:
            await a.hold(call, "a:stream", 5)  # SET + DEL in one transaction
        await a.renew({call: "a:stream" for call in calls[:12]}, 5)  # scripts in one pipeline
        await b.renew({call: "b:recovering" for call in calls[12:]}, 5)
        assert await a.held(calls) == set(calls)
        for call in calls:
            await b.release(call, "b:recovering", 0.001)
        await asyncio.sleep(0.05)
        assert await a.held(calls) == set(calls[:12])
        assert await b.claim(calls[0], "b:recovering", 5) is None  # held by a's stream
        # Never streamed: its attempts counter (next to its lease) says this is the third try.
        assert await b.claim(calls[20], "b:recovering", 5) == 3
    finally:
        await client.aclose()


async def test_sessions_rate_limits_pacing_replay_and_dashboard_sessions_on_a_cluster(cluster_url, tmp_path):
    from control_plane.crypto import load_data_keys
    from control_plane.sessions import CallSession

    client = redisconn.connect(cluster_url)
    prefix = "t:" + uuid.uuid4().hex[:6] + ":"
    try:
        store = RedisSessionStore(client, prefix, 3600, load_data_keys(make_settings(tmp_path)).cipher)
        ccid = f"v3:{uuid.uuid4().hex}"
        session = CallSession(call_id=uuid.uuid4(), call_control_id=ccid, org_id=uuid.uuid4())
        await store.save(session)
        assert (await store.load(ccid)).call_id == session.call_id
        assert store.key(ccid) == f"{prefix}call:{{{ccid}}}:session"
        assert await store.delete(ccid) and await store.load(ccid) is None

        limiter = RedisRateLimiter(client, prefix)
        decisions = await asyncio.gather(*(limiter.hit(f"org-{i % 4}", 3, 60) for i in range(20)))
        assert sum(d.allowed for d in decisions) == 12  # 3 for each of 4 organisations

        pacer = RedisPacer(client, prefix)
        waits = [await pacer.reserve("campaign-1", 60) for _ in range(3)]
        assert waits[0] == 0 and 0.9 < waits[1] <= 1.0 and 1.9 < waits[2] <= 2.0

        replay = RedisReplayStore(client, prefix, 300)
        _, headers = signed_webhook("call.hangup", {"call_control_id": ccid})
        assert await replay.first_seen(headers) is True and await replay.first_seen(headers) is False

        dashboard = RedisDashboardSessions(client, prefix)
        mine = DashboardSession(org_id=uuid.uuid4(), api_key_id=uuid.uuid4(), api_key_prefix="ck_abc",
                                csrf_token="t" * 43, expires_at=time.time() + 60)
        sid = await dashboard.create(mine)
        assert await dashboard.get(sid) == mine
    finally:
        await client.aclose()


async def test_a_control_plane_on_a_cluster_is_ready_and_places_calls(cluster_url, tmp_path):
    settings = make_settings(tmp_path, redis_url=cluster_url, redis_key_prefix="t:" + uuid.uuid4().hex[:6] + ":")
    async with harness(settings) as h:
        assert isinstance(h.cp.redis, RedisCluster)
        _ready, checks = await readiness(h.cp)
        assert checks["redis"] == "ok"
        _, headers = await h.org()
        started = await h.start_call(headers)  # the rate limit lives in the cluster
        assert started.status == 201, await started.text()
        body = await started.json()
        answered = await h.webhook("call.answered", {"call_control_id": body["call_control_id"]})
        assert answered.status == 200  # the replay guard lives in the cluster
        again = await h.client.post("/webhook/telnyx", data=b"{}", headers={})
        assert again.status == 401
