"""Telnyx webhooks: Ed25519 signature verification, replay protection, envelope parsing.

Telnyx signs ``f"{telnyx-timestamp}|".encode() + raw_body`` with Ed25519 and sends the
base64 signature in ``telnyx-signature-ed25519``. Verification follows Telnyx's own SDK
(``telnyx.lib.webhook_verification``) step for step, so a request one accepts the other
accepts: headers looked up case-insensitively, the timestamp parsed with ``int()`` and
held to ±``tolerance_s`` of ``int(now)``, key and signature base64 of exactly 32 and 64
bytes. Two deliberate differences: the body is used as raw bytes, where the SDK needs
valid UTF-8; and the signature must be canonical base64 (what Telnyx and every standard
encoder produce), where the SDK skips characters outside the alphabet and ignores the
unused trailing bits. Leniency there would let one signature travel as many header
strings, each looking new to a replay guard; the SDK's lenient decoding stays for the
public key, which people paste by hand.

Typical handler::

    raw = await request.read()
    event = verify_webhook(raw, request.headers, public_key_b64, replay_guard=guard)
"""

from __future__ import annotations

import base64
import binascii
import heapq
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE_S",
    "ReplayGuard",
    "WebhookEvent",
    "WebhookMeta",
    "WebhookParseError",
    "WebhookVerificationError",
    "decode_client_state",
    "generate_keypair",
    "parse_event",
    "public_key_b64",
    "replay_fingerprint",
    "sign",
    "verify_signature",
    "verify_webhook",
]

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
TOLERANCE_S = 300


class WebhookVerificationError(ValueError):
    """The request is not a fresh, authentic Telnyx webhook. ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookParseError(ValueError):
    """The body is not a Telnyx webhook envelope."""


# -- signatures ------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Works for plain dicts as well as aiohttp's CIMultiDict.
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _b64(value: str, what: str) -> bytes:
    try:
        # Non-validating, like the SDK: a key pasted with a trailing newline still works.
        return base64.b64decode(value)
    except (binascii.Error, ValueError, TypeError):
        raise WebhookVerificationError(f"{what} is not valid base64") from None


def _signature_bytes(value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("signature is not valid base64") from None
    if base64.b64encode(raw).decode() != value:
        # Same bytes, other spelling (non-zero padding bits, missing padding): not what Telnyx sends.
        raise WebhookVerificationError("signature is not canonical base64")
    return raw


def _read_headers(headers: Mapping[str, str]) -> tuple[str, int, bytes]:
    signature_header = _header(headers, SIGNATURE_HEADER)
    timestamp_header = _header(headers, TIMESTAMP_HEADER)
    if not signature_header:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
    if not timestamp_header:
        raise WebhookVerificationError(f"missing {TIMESTAMP_HEADER} header")
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise WebhookVerificationError("timestamp is not an integer") from None
    return timestamp_header, timestamp, _signature_bytes(signature_header)


def replay_fingerprint(headers: Mapping[str, str]) -> bytes:
    """What identifies a signed request for replay protection: its decoded signature.

    Ed25519 signatures are not malleable (the verifier rejects a non-reduced ``S``), so
    one signature verifies one (timestamp, body) message; a request that verified is named
    by those 64 bytes whatever the header string looked like."""
    return _read_headers(headers)[2]


def verify_signature(
    raw_body: bytes,
    headers: Mapping[str, str],
    public_key_b64: str,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> None:
    """Raise :class:`WebhookVerificationError` unless ``raw_body`` is signed by the holder
    of ``public_key_b64`` within ``tolerance_s`` seconds of ``now`` (default: the clock)."""
    timestamp_header, timestamp, signature = _read_headers(headers)
    current = int(time.time() if now is None else now)
    if abs(current - timestamp) > tolerance_s:
        raise WebhookVerificationError(f"timestamp outside the {tolerance_s} s tolerance")
    key = _b64(public_key_b64, "public key")
    if len(key) != 32:
        raise WebhookVerificationError(f"public key must be 32 bytes, got {len(key)}")
    if len(signature) != 64:
        raise WebhookVerificationError(f"signature must be 64 bytes, got {len(signature)}")
    message = f"{timestamp_header}|".encode() + raw_body
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise WebhookVerificationError("signature does not match") from None


def sign(raw_body: bytes, private_key: Ed25519PrivateKey | bytes, timestamp: int) -> dict[str, str]:
    """The headers Telnyx would send with ``raw_body`` at ``timestamp`` (emulator and tests)."""
    if isinstance(private_key, bytes):
        private_key = Ed25519PrivateKey.from_private_bytes(private_key)
    stamp = str(int(timestamp))
    signature = private_key.sign(f"{stamp}|".encode() + raw_body)
    return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: stamp}


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    """The base64 raw public key, as Mission Control shows it."""
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def generate_keypair() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    return key, public_key_b64(key)


# -- replays ---------------------------------------------------------------------------


class ReplayGuard:
    """Rejects an exact replay of a webhook already accepted.

    Remembers (timestamp, signature) for as long as that timestamp passes the freshness
    check, so memory is bounded by traffic over ``tolerance_s``; past ``max_entries`` the
    entries closest to expiry are forgotten first. Call it *after* the signature check so
    unauthenticated requests cannot fill it. Telnyx's own retries are re-signed
    (``meta.attempt`` changes the body), so they are never mistaken for replays; a
    duplicated *event* must still be de-duplicated by ``data.id``.
    """

    def __init__(self, *, tolerance_s: int = TOLERANCE_S, max_entries: int = 100_000) -> None:
        self.tolerance_s = tolerance_s
        self.max_entries = max_entries
        self._seen: set[tuple[int, bytes]] = set()
        self._expiry: list[tuple[int, tuple[int, bytes]]] = []

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, headers: Mapping[str, str], *, now: float | None = None) -> None:
        """Record this request; raise :class:`WebhookVerificationError` if it was seen."""
        _, timestamp, signature = _read_headers(headers)
        current = int(time.time() if now is None else now)
        self._expire(current)
        key = (timestamp, signature)
        if key in self._seen:
            raise WebhookVerificationError("replayed webhook")
        while len(self._seen) >= self.max_entries:
            _, oldest = heapq.heappop(self._expiry)
            self._seen.discard(oldest)
        self._seen.add(key)
        heapq.heappush(self._expiry, (timestamp + self.tolerance_s, key))

    def _expire(self, current: int) -> None:
        # A timestamp older than current - tolerance fails verification anyway.
        while self._expiry and self._expiry[0][0] < current:
            _, key = heapq.heappop(self._expiry)
            self._seen.discard(key)


# -- envelopes -------------------------------------------------------------------------


class WebhookMeta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    attempt: int = 1
    delivered_to: str | None = None


class WebhookEvent(BaseModel):
    """One delivered event: ``data`` of the envelope, plus its ``meta``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)
    event_type: str = Field(min_length=1)
    occurred_at: datetime
    record_type: str = "event"
    payload: dict[str, Any] = Field(default_factory=dict)
    meta: WebhookMeta = WebhookMeta()

    @property
    def attempt(self) -> int:
        return self.meta.attempt

    @property
    def call_control_id(self) -> str | None:
        return self.payload.get("call_control_id")

    @property
    def client_state(self) -> bytes | None:
        """``payload.client_state`` decoded from base64 (None when absent)."""
        return decode_client_state(self.payload.get("client_state"))


def decode_client_state(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookParseError("client_state is not valid base64") from None


def parse_event(raw_body: bytes) -> WebhookEvent:
    """Parse a webhook envelope ``{"data": {...}, "meta": {...}}``."""
    try:
        document = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise WebhookParseError(f"webhook body is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise WebhookParseError("webhook body has no 'data' object")
    meta = document.get("meta", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise WebhookParseError("webhook 'meta' is not an object")
    try:
        return WebhookEvent.model_validate({**document["data"], "meta": meta})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise WebhookParseError(f"malformed webhook envelope: {problems}") from None


def verify_webhook(
    raw_body: bytes,
    headers: Mapping[str, str],
    public_key_b64: str,
    *,
    replay_guard: ReplayGuard | None = None,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> WebhookEvent:
    """Signature, then replay, then envelope: the order a handler wants."""
    verify_signature(raw_body, headers, public_key_b64, now=now, tolerance_s=tolerance_s)
    if replay_guard is not None:
        replay_guard.check(headers, now=now)
    return parse_event(raw_body)
