"""Personal data at rest: AES-256-GCM field encryption, a keyed hash for lookups, API key material.

* :class:`FieldCipher` seals one value (a phone number, a transcript line, a JSON
  document) as ``v1.<key id>.<base64url(nonce || ciphertext || tag)>``. The column it
  belongs to is the associated data, so a value copied into another column does not
  decrypt. ``encryption_key`` may list several keys, newest first: the first seals,
  all open (rotation without a rewrite).
* :class:`LookupHasher` turns a phone number into ``h1:<base64url(HMAC-SHA256)>`` under a
  separate key: equality lookups (DNC, erasure, "calls to this number") without storing
  the number. After an erasure the hash is all that is left.
* API keys are ``ck_`` + 256 random bits; only SHA-256 of the key is stored, next to a
  short prefix used to find the row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .jsonutil import dumps

TOKEN_VERSION = "v1"
HASH_PREFIX = "h1:"
API_KEY_PREFIX = "ck_"
API_KEY_LOOKUP_CHARS = 12
KEY_FILE = "keys.json"


class CryptoConfigError(RuntimeError):
    """Encryption keys are missing or malformed."""


class DecryptionError(RuntimeError):
    """A sealed value does not open: wrong key, wrong column, or tampered."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_key(value: str, what: str, *, exact: int | None = None, minimum: int = 32) -> bytes:
    """A key given as base64 (standard or URL-safe alphabet)."""
    text = value.strip()
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CryptoConfigError(f"{what} is not valid base64") from None
    if exact is not None and len(raw) != exact:
        raise CryptoConfigError(f"{what} must decode to {exact} bytes, got {len(raw)}")
    if len(raw) < minimum:
        raise CryptoConfigError(f"{what} must decode to at least {minimum} bytes, got {len(raw)}")
    return raw


def generate_key() -> str:
    """A fresh base64 32-byte key, for ``encryption_key`` or ``lookup_hash_key``."""
    return base64.b64encode(os.urandom(32)).decode()


class FieldCipher:
    __slots__ = ("_sealer", "_openers")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise CryptoConfigError("at least one encryption key is required")
        self._openers: dict[str, AESGCM] = {}
        for key in keys:
            if len(key) != 32:
                raise CryptoConfigError("encryption keys must be 32 bytes (AES-256)")
            self._openers.setdefault(self.key_id(key), AESGCM(key))
        self._sealer = (self.key_id(keys[0]), self._openers[self.key_id(keys[0])])

    @staticmethod
    def key_id(key: bytes) -> str:
        return hashlib.sha256(b"callagent key id\x00" + key).hexdigest()[:8]

    def seal_bytes(self, data: bytes, context: str) -> str:
        kid, aead = self._sealer
        nonce = os.urandom(12)
        return f"{TOKEN_VERSION}.{kid}.{_b64url(nonce + aead.encrypt(nonce, data, context.encode()))}"

    def open_bytes(self, token: str, context: str) -> bytes:
        try:
            version, kid, body = token.split(".", 2)
        except (ValueError, AttributeError):
            raise DecryptionError(f"{context}: not a sealed value") from None
        aead = self._openers.get(kid)
        if version != TOKEN_VERSION or aead is None:
            raise DecryptionError(f"{context}: sealed with an unknown key ({kid!r}); is encryption_key complete?")
        try:
            raw = _unb64url(body)
            return aead.decrypt(raw[:12], raw[12:], context.encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise DecryptionError(f"{context}: value does not open with the configured key") from None

    def seal(self, text: str | None, context: str) -> str | None:
        return None if text is None else self.seal_bytes(text.encode(), context)

    def open(self, token: str | None, context: str) -> str | None:
        return None if token is None else self.open_bytes(token, context).decode()

    def seal_json(self, value: Any, context: str) -> str | None:
        return None if value is None else self.seal_bytes(dumps(value), context)

    def open_json(self, token: str | None, context: str) -> Any:
        return None if token is None else orjson.loads(self.open_bytes(token, context))


class LookupHasher:
    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise CryptoConfigError("the lookup hash key must be at least 32 bytes")
        self._key = key

    def _digest(self, domain: bytes, data: bytes) -> str:
        # The domain keeps one kind of value from ever matching another's hash.
        return HASH_PREFIX + _b64url(hmac.new(self._key, domain + b"\x00" + data, hashlib.sha256).digest())

    def phone(self, e164: str) -> str:
        """The keyed hash of a normalised E.164 number (see :func:`control_plane.phone.normalize_e164`)."""
        return self._digest(b"phone", e164.encode())

    def idempotency_key(self, key: str) -> str:
        """The keyed hash a client's Idempotency-Key is stored and looked up as (keys may hold a number)."""
        return self._digest(b"idempotency-key", key.encode())

    def request(self, canonical: bytes) -> str:
        """The keyed hash of a request's canonical form: compares retries without keeping their
        bodies, and cannot be reversed by trying every phone number."""
        return self._digest(b"request", canonical)

    def stream_credential(self, call_id: str, nonce: str) -> str:
        """The MAC of one media stream's credential for a call (see :mod:`control_plane.streamauth`)."""
        return self._digest(b"stream", f"{call_id}\x00{nonce}".encode())[len(HASH_PREFIX):]


@dataclass(frozen=True, slots=True)
class DataKeys:
    cipher: FieldCipher
    hasher: LookupHasher


def _local_keys(data_dir: Path) -> tuple[str, str]:
    """The embedded store's keys: generated into ``data_dir/keys.json`` (mode 0600) on first use."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        document = json.dumps({"encryption_key": generate_key(), "lookup_hash_key": generate_key()}).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race: read its keys
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(document)
                handle.flush()
                os.fsync(handle.fileno())
    try:
        stored = json.loads(path.read_text())
        return stored["encryption_key"], stored["lookup_hash_key"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CryptoConfigError(f"cannot read the generated keys in {path}: {exc}") from None


def load_data_keys(settings: Any) -> DataKeys:
    """Keys from settings; for the embedded store without keys, from (or into) ``data_dir``."""
    enc = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    look = settings.lookup_hash_key.get_secret_value() if settings.lookup_hash_key else None
    if (enc is None) != (look is None):
        raise CryptoConfigError("set both CALLAGENT_ENCRYPTION_KEY and CALLAGENT_LOOKUP_HASH_KEY, or neither")
    if enc is None:
        if settings.database_url is not None:
            raise CryptoConfigError(
                "CALLAGENT_ENCRYPTION_KEY and CALLAGENT_LOOKUP_HASH_KEY are required with DATABASE_URL "
                "(generate each with: python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
            )
        enc, look = _local_keys(Path(settings.data_dir))
    keys = [decode_key(part, "encryption_key", exact=32) for part in enc.split(",") if part.strip()]
    hash_key = decode_key(look or "", "lookup_hash_key")
    if any(hmac.compare_digest(hash_key, key) for key in keys):
        raise CryptoConfigError("lookup_hash_key must differ from encryption_key")
    return DataKeys(FieldCipher(keys), LookupHasher(hash_key))


# -- API keys ---------------------------------------------------------------------------


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_lookup_prefix(key: str) -> str:
    return key[:API_KEY_LOOKUP_CHARS]


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)
