"""Webhook replay protection: a signed request is accepted once.

A request is named by its decoded signature bytes
(:func:`~control_plane.telnyx.webhooks.replay_fingerprint`), never by the header string,
so re-spelling the same signature is still a replay. In-process it is
:class:`control_plane.telnyx.webhooks.ReplayGuard`; with Redis the fingerprint is claimed
with ``SET NX`` so every process sees it. Entries live a little longer than the timestamp
tolerance, after which the request is stale anyway. The webhook handler claims only once
the event is stored, so a request that failed to store can be delivered again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from .telnyx.webhooks import ReplayGuard, WebhookVerificationError, replay_fingerprint


class ReplayStore(Protocol):
    async def first_seen(self, headers: Mapping[str, str]) -> bool: ...


class MemoryReplayStore:
    def __init__(self, tolerance_s: int) -> None:
        self._guard = ReplayGuard(tolerance_s=tolerance_s)

    async def first_seen(self, headers: Mapping[str, str]) -> bool:
        try:
            self._guard.check(headers)
        except WebhookVerificationError:
            return False
        return True


class RedisReplayStore:
    def __init__(self, client: Any, prefix: str, tolerance_s: int) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_s = 2 * tolerance_s + 60

    async def first_seen(self, headers: Mapping[str, str]) -> bool:
        try:
            fingerprint = replay_fingerprint(headers)
        except WebhookVerificationError:
            return False
        key = f"{self._prefix}webhook:seen:{hashlib.sha256(fingerprint).hexdigest()}"
        return bool(await self._client.set(key, b"1", nx=True, ex=self._ttl_s))
