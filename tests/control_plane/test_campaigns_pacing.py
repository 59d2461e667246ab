"""The dial pacer's schedule, in virtual time (in-process) and against real Redis (shared).

Pacing is exact by construction: each reservation books the next slot of a fixed grid. These
tests check the grid itself; how closely a loaded machine keeps to it is the campaign bench's
``pacing_error_pct``, not a wall-clock assertion here.
"""

from __future__ import annotations

import pytest

from control_plane.campaigns.pacing import MemoryPacer, RedisPacer
from control_plane.redisconn import tag

from .conftest import REDIS_URL


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_slots_are_evenly_spaced_at_the_configured_rate():
    clock = Clock()
    pacer = MemoryPacer(clock)
    waits = [await pacer.reserve("c", 600) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


async def test_a_full_bucket_lets_the_burst_go_at_once_then_paces():
    pacer = MemoryPacer(Clock())
    waits = [await pacer.reserve("c", 600, burst=3) for _ in range(6)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])


async def test_idle_time_does_not_pile_up_into_a_burst():
    clock = Clock()
    pacer = MemoryPacer(clock)
    await pacer.reserve("c", 60)
    clock.now += 3600  # an hour of nothing
    waits = [await pacer.reserve("c", 60) for _ in range(3)]
    assert waits == pytest.approx([0.0, 1.0, 2.0])


async def test_a_slow_caller_keeps_its_slot_and_never_gets_two_in_one_interval():
    clock = Clock()
    pacer = MemoryPacer(clock)
    assert await pacer.reserve("c", 60) == 0.0
    clock.now += 0.4  # the next reservation comes early: it waits for the rest of the interval
    assert await pacer.reserve("c", 60) == pytest.approx(0.6)
    clock.now += 5.0  # then late: it goes at once and the grid restarts from now
    assert await pacer.reserve("c", 60) == 0.0
    assert await pacer.reserve("c", 60) == pytest.approx(1.0)


async def test_campaigns_are_paced_independently():
    pacer = MemoryPacer(Clock())
    assert [await pacer.reserve("a", 60), await pacer.reserve("b", 60), await pacer.reserve("a", 60)] == \
        pytest.approx([0.0, 0.0, 1.0])


async def test_redis_pacer_shares_one_schedule_between_dialers(redis_prefix):
    import redis.asyncio as redis

    first, second = redis.from_url(REDIS_URL), redis.from_url(REDIS_URL)
    try:
        a, b = RedisPacer(first, redis_prefix), RedisPacer(second, redis_prefix)
        # Slots 10 s apart (no stall on a loaded machine reaches the next one): slot k is the
        # first reservation's Redis time t0 plus k intervals, and the wait each dialer got is that
        # slot minus Redis's clock when it asked. So the clock readings the waits imply must run
        # forward from t0, and end before Redis's clock now: exact, on Redis's clock, no window.
        interval_us = 10_000_000
        waits_us = [round(await (a if i % 2 else b).reserve("shared", 6) * 1e6) for i in range(6)]
        seconds, micros = await first.time()
        now_us = seconds * 1_000_000 + micros
        t0 = int(await first.get(f"{redis_prefix}pacing:{tag('shared')}")) - 6 * interval_us
        asked_at = [t0 + k * interval_us - wait for k, wait in enumerate(waits_us)]
        assert waits_us[0] == 0 and asked_at == sorted(asked_at) and t0 <= asked_at[0] <= asked_at[-1] <= now_us, (
            waits_us, asked_at, now_us)
        assert await a.reserve("other", 600) == 0.0  # a fresh key: its first slot is now
    finally:
        await first.aclose()
        await second.aclose()
