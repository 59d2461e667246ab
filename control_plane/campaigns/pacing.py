"""Dial pacing: a token bucket in its GCRA form, reserving exact send times.

``reserve(key, per_minute)`` books the next slot and returns how long to wait for it: slots
are ``60 / per_minute`` seconds apart, with a bucket of ``burst`` tokens (1: perfectly even).
A booked slot is never lost to a slow caller and unused time never piles up into a burst
(the theoretical arrival time only moves forward), so over any minute at most
``per_minute + burst - 1`` dials start. Shared by every process through one Redis key and a
Lua script reading Redis's clock (skewed hosts still share one schedule); in-process without
Redis, which is exact for a single dialer process (SQLite, or one worker).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from ..redisconn import tag


def pacing_burst(calls_per_minute: int) -> int:
    """The bucket's size: a quarter of a second of dials (1 up to 240 a minute). A step that ran late
    is caught up instead of lost, and no minute ever sees more than calls_per_minute + burst - 1."""
    return max(1, round(calls_per_minute / 240))


class Pacer(Protocol):
    async def reserve(self, key: str, per_minute: float, burst: int = 1) -> float:
        """Book the next slot for ``key``; returns the seconds to wait until it."""


class MemoryPacer:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}

    async def reserve(self, key: str, per_minute: float, burst: int = 1) -> float:
        interval = 60.0 / per_minute
        now = self._clock()
        tat = self._tat.get(key, now)
        slot = max(now, tat - interval * (max(1, burst) - 1))
        self._tat[key] = max(tat, now) + interval
        return max(0.0, slot - now)


_GCRA = """
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', key) or now)
local slot = math.max(now, tat - interval * (burst - 1))
local next_tat = math.max(tat, now) + interval
redis.call('SET', key, string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 60000)
return string.format('%.0f', slot - now)
"""


class RedisPacer:
    """The same schedule kept in Redis (microseconds), so every dialer process shares it."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._script = client.register_script(_GCRA)
        self._prefix = prefix

    async def reserve(self, key: str, per_minute: float, burst: int = 1) -> float:
        interval_us = 60_000_000.0 / per_minute
        wait_us = await self._script(keys=[f"{self._prefix}pacing:{tag(key)}"],
                                     args=[f"{interval_us:.0f}", max(1, int(burst))])
        return max(0.0, int(wait_us) / 1_000_000)
