"""Sliding-window rate limits: in-process, or shared by every process through Redis.

A sliding log: each allowed hit is remembered for ``window_s``; a hit is allowed while
fewer than ``limit`` are remembered. Unlike a fixed window it never lets 2 x limit
through across a window boundary. The Redis version is one Lua script (atomic) that
reads Redis's own clock, so processes with skewed clocks still share one window.
"""

from __future__ import annotations

import collections
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .redisconn import tag


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_s: float) -> RateDecision: ...


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._hits: dict[str, collections.deque[float]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, limit: int, window_s: float) -> RateDecision:
        now = self._clock()
        log = self._hits.get(key)
        if log is None:
            if len(self._hits) >= self._max_keys:
                self._evict(now, window_s)
            log = self._hits[key] = collections.deque()
        while log and log[0] <= now - window_s:
            log.popleft()
        if len(log) < limit:
            log.append(now)
            return RateDecision(True, limit, limit - len(log), 0.0)
        return RateDecision(False, limit, 0, max(0.0, log[0] + window_s - now))

    def _evict(self, now: float, window_s: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - window_s]:
            del self._hits[key]


_SLIDING_LOG = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_ms)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window_ms)
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, 0, math.max(0, window_ms - (now - tonumber(oldest[2])))}
"""


class RedisRateLimiter:
    def __init__(self, client: Any, prefix: str) -> None:
        self._script = client.register_script(_SLIDING_LOG)
        self._prefix = prefix

    async def hit(self, key: str, limit: int, window_s: float) -> RateDecision:
        member = f"{time.time_ns()}-{secrets.token_hex(4)}"
        allowed, remaining, retry_ms = await self._script(
            keys=[f"{self._prefix}ratelimit:{tag(key)}"], args=[limit, int(window_s * 1000), member]
        )
        return RateDecision(bool(allowed), limit, int(remaining), int(retry_ms) / 1000.0)
