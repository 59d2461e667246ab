"""Endpoint secrets and signatures, per Standard Webhooks (https://www.standardwebhooks.com).

Signing is the ``standardwebhooks`` reference package's, so a receiver verifying with the
same package (or any conforming library) agrees byte for byte. After a rotation the old secret
signs too, for a grace period: ``webhook-signature`` then carries both, space-separated, which
the specification allows so receivers can switch secrets without losing a delivery.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def headers(message_id: str, at: datetime, body: bytes, keys: Iterable[str]) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (``at``: when it is sent)."""
    signatures = " ".join(Webhook(key).sign(message_id, at, body) for key in keys)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
