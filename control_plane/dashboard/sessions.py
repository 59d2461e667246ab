"""Dashboard sign-in sessions: a random id in an HttpOnly cookie, the rest server-side.

The cookie holds only the session id; the store is keyed by the id's SHA-256, so whoever
reads the store (a Redis dump) cannot replay a cookie from it. The API key itself is never
kept: the session remembers which key signed in (its id and lookup prefix), and every
request checks that key is still active, so revoking it ends its sessions.
Expiry is fixed at sign-in (``dashboard.session_ttl_s``), not extended by use.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from uuid import UUID

import orjson

SESSION_ID_BYTES = 32


@dataclass(frozen=True, slots=True)
class DashboardSession:
    org_id: UUID
    api_key_id: UUID
    api_key_prefix: str
    csrf_token: str
    expires_at: float
    """Wall-clock (``time.time()``) second after which the session is gone."""

    def to_json(self) -> bytes:
        data = asdict(self)
        data["org_id"], data["api_key_id"] = str(self.org_id), str(self.api_key_id)
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> DashboardSession:
        data = orjson.loads(raw)
        return cls(org_id=UUID(data["org_id"]), api_key_id=UUID(data["api_key_id"]),
                   api_key_prefix=data["api_key_prefix"], csrf_token=data["csrf_token"],
                   expires_at=float(data["expires_at"]))


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class DashboardSessionStore(Protocol):
    async def create(self, session: DashboardSession) -> str:
        """Store ``session``; the new session id (for the cookie)."""
    async def get(self, session_id: str) -> DashboardSession | None: ...
    async def delete(self, session_id: str) -> None: ...


class MemoryDashboardSessions:
    """One process's sessions (the default without Redis): lost on restart, not shared."""

    MAX_SESSIONS = 10_000

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._items: dict[str, DashboardSession] = {}

    async def create(self, session: DashboardSession) -> str:
        now = self._clock()
        if len(self._items) >= self.MAX_SESSIONS:
            self._items = {k: v for k, v in self._items.items() if v.expires_at > now}
            while len(self._items) >= self.MAX_SESSIONS:  # all live: the oldest sign-in goes
                self._items.pop(next(iter(self._items)))
        session_id = new_session_id()
        self._items[_digest(session_id)] = session
        return session_id

    async def get(self, session_id: str) -> DashboardSession | None:
        key = _digest(session_id)
        session = self._items.get(key)
        if session is not None and session.expires_at <= self._clock():
            del self._items[key]
            return None
        return session

    async def delete(self, session_id: str) -> None:
        self._items.pop(_digest(session_id), None)


class RedisDashboardSessions:
    """Sessions shared by every instance behind the load balancer; Redis expires them."""

    def __init__(self, client: Any, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock

    def key(self, session_id: str) -> str:
        return f"{self._prefix}dashboard:session:{_digest(session_id)}"

    async def create(self, session: DashboardSession) -> str:
        session_id = new_session_id()
        ttl = max(1, int(session.expires_at - self._clock()))
        await self._client.set(self.key(session_id), session.to_json(), ex=ttl)
        return session_id

    async def get(self, session_id: str) -> DashboardSession | None:
        raw = await self._client.get(self.key(session_id))
        if raw is None:
            return None
        session = DashboardSession.from_json(raw)
        return session if session.expires_at > self._clock() else None

    async def delete(self, session_id: str) -> None:
        await self._client.delete(self.key(session_id))
