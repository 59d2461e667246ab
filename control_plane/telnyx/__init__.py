"""Telnyx: the Call Control REST client and webhook verification/parsing."""

from .client import (
    DEFAULT_BASE_URL,
    DialResult,
    HangupResult,
    TelnyxApiError,
    TelnyxClient,
    TelnyxConnectionError,
    TelnyxError,
    TelnyxRateLimited,
    encode_client_state,
)
from .webhooks import (
    ReplayGuard,
    WebhookEvent,
    WebhookParseError,
    WebhookVerificationError,
    decode_client_state,
    parse_event,
    sign,
    verify_signature,
    verify_webhook,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DialResult",
    "HangupResult",
    "ReplayGuard",
    "TelnyxApiError",
    "TelnyxClient",
    "TelnyxConnectionError",
    "TelnyxError",
    "TelnyxRateLimited",
    "WebhookEvent",
    "WebhookParseError",
    "WebhookVerificationError",
    "decode_client_state",
    "encode_client_state",
    "parse_event",
    "sign",
    "verify_signature",
    "verify_webhook",
]
