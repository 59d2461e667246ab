"""Per-call session state (call metadata, conversation history, agent state) with a TTL.

Redis: key ``{prefix}call:{<call_control_id>}:session``, a JSON envelope whose ``data`` is
the session sealed with the field cipher (the history is a transcript: personal data at
rest). In-process: the same interface over a dict, for single-process runs and tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .crypto import FieldCipher
from .redisconn import tag
from .store.records import utcnow

SESSION_CONTEXT = "session"


class CallSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_control_id: str = Field(min_length=1)
    call_id: UUID | None = None
    org_id: UUID | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, description="direction, numbers, agent_config, ...")
    history: list[dict[str, Any]] = Field(default_factory=list, description="conversation messages {role, content}")
    agent_state: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime = Field(default_factory=utcnow)


class SessionStore(Protocol):
    async def save(self, session: CallSession) -> None: ...
    async def load(self, call_control_id: str) -> CallSession | None: ...
    async def delete(self, call_control_id: str) -> bool: ...


class MemorySessionStore:
    def __init__(self, ttl_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._items: dict[str, tuple[float, bytes]] = {}

    async def save(self, session: CallSession) -> None:
        now = self._clock()
        if len(self._items) > 10_000:
            self._items = {k: v for k, v in self._items.items() if v[0] > now}
        self._items[session.call_control_id] = (now + self.ttl_s, session.model_dump_json().encode())

    async def load(self, call_control_id: str) -> CallSession | None:
        item = self._items.get(call_control_id)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._items[call_control_id]
            return None
        return CallSession.model_validate_json(item[1])

    async def delete(self, call_control_id: str) -> bool:
        item = self._items.pop(call_control_id, None)
        return item is not None and item[0] > self._clock()


class RedisSessionStore:
    def __init__(self, client: Any, prefix: str, ttl_s: int, cipher: FieldCipher | None) -> None:
        self._client = client
        self._prefix = prefix
        self.ttl_s = ttl_s
        self._cipher = cipher

    def key(self, call_control_id: str) -> str:
        return f"{self._prefix}call:{tag(call_control_id)}:session"

    async def save(self, session: CallSession) -> None:
        raw = session.model_dump_json().encode()
        if self._cipher is not None:
            envelope = {"v": 1, "sealed": True, "data": self._cipher.seal_bytes(raw, SESSION_CONTEXT)}
        else:
            envelope = {"v": 1, "sealed": False, "data": orjson.loads(raw)}
        await self._client.set(self.key(session.call_control_id), orjson.dumps(envelope), ex=self.ttl_s)

    async def load(self, call_control_id: str) -> CallSession | None:
        raw = await self._client.get(self.key(call_control_id))
        if raw is None:
            return None
        envelope = orjson.loads(raw)
        if envelope.get("sealed"):
            if self._cipher is None:
                raise RuntimeError("session is sealed but no encryption key is configured")
            return CallSession.model_validate_json(self._cipher.open_bytes(envelope["data"], SESSION_CONTEXT))
        return CallSession.model_validate(envelope["data"])

    async def delete(self, call_control_id: str) -> bool:
        return bool(await self._client.delete(self.key(call_control_id)))
