"""Who holds each live call's media stream, as leases that lapse when their holder dies.

A lease is a value (``<instance>:<stream>``) with an expiry, per call. The instance whose
socket carries a call's stream :meth:`~StreamLeases.hold`\\s it and renews it while the socket is
open; when the socket closes it shortens it to a grace (the call may simply have ended). A call
that is live in the store with no lease has lost its stream: the recovery sweep
:meth:`~StreamLeases.claim`\\s it (only one instance can) before it acts.

Redis: key ``{prefix}stream:{<call_id>}`` (the id a hash tag, :mod:`control_plane.redisconn`)
(``SET NX PX`` to claim, compare-and-set scripts to
renew and release), and ``{prefix}stream:{<call_id>}:attempts`` counting re-attaches that no stream
followed. In-process: the same over a dict, for a single instance (SQLite, or no Redis).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from uuid import UUID

from .redisconn import tag


class StreamLeases(Protocol):
    async def hold(self, call_id: UUID, value: str, ttl_s: float) -> None:
        """The stream is here: take the lease whoever had it, and forget the failed attempts."""
    async def renew(self, leases: Mapping[UUID, str], ttl_s: float) -> None:
        """Extend each lease still holding its value."""
    async def release(self, call_id: UUID, value: str, ttl_s: float) -> None:
        """The socket closed: let the lease lapse within ``ttl_s``, if it is still this one."""
    async def claim(self, call_id: UUID, value: str, ttl_s: float) -> int | None:
        """Take a lapsed lease; returns the how-manieth attempt this is, or None if it is held."""
    async def held(self, call_ids: Iterable[UUID]) -> set[UUID]:
        """Those of ``call_ids`` with a lease."""


class MemoryStreamLeases:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[UUID, tuple[str, float]] = {}
        self._attempts: dict[UUID, int] = {}

    def _live(self, call_id: UUID) -> tuple[str, float] | None:
        lease = self._leases.get(call_id)
        if lease is not None and lease[1] <= self._clock():
            del self._leases[call_id]
            return None
        return lease

    async def hold(self, call_id: UUID, value: str, ttl_s: float) -> None:
        now = self._clock()
        if len(self._leases) > 10_000:  # leases of calls long over are only dropped when looked at
            self._leases = {k: v for k, v in self._leases.items() if v[1] > now}
        self._leases[call_id] = (value, now + ttl_s)
        self._attempts.pop(call_id, None)

    async def renew(self, leases: Mapping[UUID, str], ttl_s: float) -> None:
        until = self._clock() + ttl_s
        for call_id, value in leases.items():
            lease = self._live(call_id)
            if lease is not None and lease[0] == value:
                self._leases[call_id] = (value, until)

    async def release(self, call_id: UUID, value: str, ttl_s: float) -> None:
        lease = self._live(call_id)
        if lease is not None and lease[0] == value:
            self._leases[call_id] = (value, min(lease[1], self._clock() + ttl_s))

    async def claim(self, call_id: UUID, value: str, ttl_s: float) -> int | None:
        if self._live(call_id) is not None:
            return None
        self._leases[call_id] = (value, self._clock() + ttl_s)
        attempt = self._attempts[call_id] = self._attempts.get(call_id, 0) + 1
        if len(self._attempts) > 10_000:  # calls that ended mid-recovery: keep the map bounded
            self._attempts = {k: v for k, v in self._attempts.items() if k in self._leases}
        return attempt

    async def held(self, call_ids: Iterable[UUID]) -> set[UUID]:
        return {call_id for call_id in call_ids if self._live(call_id) is not None}


# KEYS[1] lease; ARGV[1] value, ARGV[2] ttl ms. Extend only while it holds this value.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Shorten (never lengthen) the lease to ARGV[2] ms, only while it holds this value.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < 0 or left > tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""
# KEYS[1] lease, KEYS[2] attempts; ARGV[1] value, ARGV[2] ttl ms, ARGV[3] attempts ttl ms.
_CLAIM = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local n = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return n
"""
ATTEMPTS_TTL_S = 3600.0


class RedisStreamLeases:
    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._release = client.register_script(_RELEASE)
        self._claim = client.register_script(_CLAIM)

    def _key(self, call_id: UUID) -> str:
        # The call id is the hash tag: the lease and its ":attempts" counter share a cluster slot.
        return f"{self._prefix}stream:{tag(call_id)}"

    async def hold(self, call_id: UUID, value: str, ttl_s: float) -> None:
        key = self._key(call_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(key, value, px=_ms(ttl_s))
            pipe.delete(key + ":attempts")
            await pipe.execute()

    async def renew(self, leases: Mapping[UUID, str], ttl_s: float) -> None:
        if not leases:
            return
        # EVAL, not the registered script's EVALSHA: a Redis Cluster pipeline does not load
        # scripts on the nodes it sends to (NOSCRIPT), and the script is a hundred bytes.
        async with self._client.pipeline(transaction=False) as pipe:
            for call_id, value in leases.items():
                pipe.eval(_RENEW, 1, self._key(call_id), value, _ms(ttl_s))
            await pipe.execute()

    async def release(self, call_id: UUID, value: str, ttl_s: float) -> None:
        await self._release(keys=[self._key(call_id)], args=[value, _ms(ttl_s)])

    async def claim(self, call_id: UUID, value: str, ttl_s: float) -> int | None:
        key = self._key(call_id)
        attempt = int(await self._claim(keys=[key, key + ":attempts"], args=[value, _ms(ttl_s),
                                                                              _ms(ATTEMPTS_TTL_S)]))
        return attempt or None

    async def held(self, call_ids: Iterable[UUID]) -> set[UUID]:
        ids = list(call_ids)
        if not ids:
            return set()
        # One GET each in a pipeline, not MGET: in a cluster the keys live in different slots.
        async with self._client.pipeline(transaction=False) as pipe:
            for call_id in ids:
                pipe.get(self._key(call_id))
            values = await pipe.execute()
        return {call_id for call_id, value in zip(ids, values, strict=False) if value is not None}


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
