"""Webhook replay protection: an exact signed request is accepted once.

In-process it is :class:`control_plane.telnyx.webhooks.ReplayGuard`; with Redis the
(timestamp, signature) pair is claimed with ``SET NX`` so every process sees it. Entries
live a little longer than the timestamp tolerance, after which the request is stale anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from .telnyx.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, ReplayGuard, WebhookVerificationError


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
        lowered = {k.lower(): v for k, v in headers.items()}
        fingerprint = f"{lowered.get(TIMESTAMP_HEADER, '')}|{lowered.get(SIGNATURE_HEADER, '')}"
        key = f"{self._prefix}webhook:seen:{hashlib.sha256(fingerprint.encode()).hexdigest()}"
        return bool(await self._client.set(key, b"1", nx=True, ex=self._ttl_s))
