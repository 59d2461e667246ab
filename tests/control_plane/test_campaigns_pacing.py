"""The dial pacer's schedule, in virtual time (in-process) and against real Redis (shared).

Pacing is exact by construction: each reservation books the next slot of a fixed grid. These
tests check the grid itself; how closely a loaded machine keeps to it is the campaign bench's
``pacing_error_pct``, not a wall-clock assertion here.
"""

from __future__ import annotations

import time

import pytest

from control_plane.campaigns.pacing import MemoryPacer, RedisPacer

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
        start = time.monotonic()
        waits = [await (a if i % 2 else b).reserve("shared", 600) for i in range(6)]
        elapsed = time.monotonic() - start
        # Slot k is 0.1 s * k after the first; Redis's clock moved on by at most `elapsed` meanwhile.
        for k, wait in enumerate(waits):
            assert k * 0.1 - elapsed - 0.002 <= wait <= k * 0.1 + 0.002, (k, waits, elapsed)
        assert await a.reserve("other", 600) == pytest.approx(0.0, abs=0.002)
    finally:
        await first.aclose()
        await second.aclose()
