"""What a tool knows about the call it runs in, and how an HTTP tool's request is signed.

HTTP tools receive, as their JSON body::

    {"tool": "order_status",
     "arguments": {...the model's arguments...},
     "call": {"call_id": ..., "organisation_id": ..., "call_control_id": ...,
              "from": "+15550100", "to": "+15550199", "direction": "outbound",
              "variables": {...the agent's variables...}}}

and, when the organisation has a signing secret, two headers::

    Callagent-Timestamp: 1765080000
    Callagent-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

The secret is the organisation's (``GET /api/organisation/tool-signing-secret``: text whose
UTF-8 bytes are the key). A receiver recomputes the HMAC over the timestamp, a dot and the body bytes exactly as
received, compares in constant time, and refuses a timestamp more than a few minutes from
its own clock (a replayed request). The ``v1=`` prefix leaves room for another scheme; a
rotation may send several ``v1=`` values separated by commas (accept any that matches).
:func:`verify` is the reference implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TIMESTAMP_HEADER = "Callagent-Timestamp"
SIGNATURE_HEADER = "Callagent-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


@dataclass(frozen=True)
class ToolContext:
    """The call a tool runs in. Fields the engine cannot know (a bare stream with no control
    plane behind it) are None."""

    call_id: str | None = None
    organisation_id: str | None = None
    call_control_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    signing_secrets: tuple[bytes, ...] = field(default=(), repr=False, compare=False)
    """Secrets the organisation's HTTP tool requests are signed with (newest first); never sent."""

    def as_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "organisation_id": self.organisation_id,
                "call_control_id": self.call_control_id, "from": self.from_number, "to": self.to_number,
                "direction": self.direction, "variables": dict(self.variables)}


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secrets: tuple[bytes, ...], body: bytes, now: float | None = None) -> dict[str, str]:
    """The two headers for ``body`` (none without a secret)."""
    if not secrets:
        return {}
    timestamp = int(time.time() if now is None else now)
    value = ",".join(f"{SCHEME}={signature(s, timestamp, body)}" for s in secrets)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: value}


def verify(secret: bytes, headers: Mapping[str, str], body: bytes, *, tolerance_s: float = DEFAULT_TOLERANCE_S,
           now: float | None = None) -> bool:
    """What a receiver does: True when one of the request's ``v1`` signatures is ``secret``'s
    over this body and the timestamp is within ``tolerance_s`` of ``now``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ts = lowered.get(TIMESTAMP_HEADER.lower(), "")
    if not raw_ts.isdigit():
        return False
    timestamp = int(raw_ts)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    for part in lowered.get(SIGNATURE_HEADER.lower(), "").split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SCHEME and hmac.compare_digest(value, expected):
            return True
    return False


def organisation_secret(server_key: bytes, organisation_id: str) -> str:
    """An organisation's signing secret, derived from the server's ``tools.signing_key``: one
    secret per organisation with nothing to store (HMAC as a PRF, keyed by the server's key).
    It is text (``ts_`` and 64 hex digits); its UTF-8 bytes are the HMAC key."""
    digest = hmac.new(server_key, b"callagent tool signing v1|" + organisation_id.encode(), hashlib.sha256)
    return "ts_" + digest.hexdigest()
