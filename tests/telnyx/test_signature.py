"""Webhook signatures: our verifier, the emulator's signer and Telnyx's SDK agree."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telnyx.lib import webhook_verification as sdk

from control_plane.telnyx import (
    ReplayGuard,
    WebhookParseError,
    WebhookVerificationError,
    parse_event,
    sign,
    verify_signature,
    verify_webhook,
)
from control_plane.telnyx.webhooks import generate_keypair, replay_fingerprint
from tests.control_plane.fakes import unused_bits_flipped

from .helpers import CONNECTION_ID, FROM, TO

KEY, PUBLIC = generate_keypair()
OTHER_KEY, OTHER_PUBLIC = generate_keypair()
NOW = 1_700_000_000
BODY = b'{"data":{"event_type":"call.initiated","id":"e1","occurred_at":"2026-01-01T00:00:00Z","payload":{}}}'


def _sign_verbatim(body: bytes, timestamp_header: str) -> dict[str, str]:
    """Sign over the header exactly as given (``sign`` normalises it to an int)."""
    signature = KEY.sign(f"{timestamp_header}|".encode() + body)
    return {"telnyx-signature-ed25519": base64.b64encode(signature).decode(), "telnyx-timestamp": timestamp_header}


def _rejects(body: bytes, headers: dict[str, str], key: str = PUBLIC, now: float = NOW) -> str:
    with pytest.raises(WebhookVerificationError) as info:
        verify_signature(body, headers, key, now=now)
    return info.value.reason


def _sdk_accepts(body: bytes, headers: dict[str, str], key: str, now: int) -> bool:
    with mock.patch.object(sdk, "time", SimpleNamespace(time=lambda: now)):
        try:
            sdk.verify_webhook_signature(body, headers, key)
        except Exception:  # the SDK's own error type, or whatever its decoding raises
            return False
    return True


def _ours_accepts(body: bytes, headers: dict[str, str], key: str, now: int) -> bool:
    try:
        verify_signature(body, headers, key, now=now)
    except WebhookVerificationError:
        return False
    return True


# -- the basics ------------------------------------------------------------------------------


async def test_emulator_signed_webhook_verifies_with_ours_and_the_sdk(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    await sink.wait_for("call.answered", result.call_control_id)
    for received in sink.received:
        verify_signature(received.body, received.headers, emulator.public_key_b64)
        sdk.verify_webhook_signature(received.body, received.headers, emulator.public_key_b64)
        with pytest.raises(WebhookVerificationError):
            verify_signature(received.body, received.headers, OTHER_PUBLIC)


def test_valid_signature_accepted_and_headers_are_case_insensitive() -> None:
    headers = sign(BODY, KEY, NOW)
    verify_signature(BODY, headers, PUBLIC, now=NOW)
    verify_signature(BODY, {k.title(): v for k, v in headers.items()}, PUBLIC, now=NOW)
    verify_signature(BODY, {k.upper(): v for k, v in headers.items()}, PUBLIC, now=NOW)


def test_tampered_body_and_wrong_key_rejected() -> None:
    headers = sign(BODY, KEY, NOW)
    assert "match" in _rejects(BODY.replace(b"initiated", b"answered!"), headers)
    assert "match" in _rejects(BODY + b" ", headers)
    assert "match" in _rejects(BODY, headers, key=OTHER_PUBLIC)


def test_timestamp_header_is_part_of_the_signed_message() -> None:
    headers = sign(BODY, KEY, NOW)
    headers["telnyx-timestamp"] = str(NOW + 1)
    assert "match" in _rejects(BODY, headers)


@pytest.mark.parametrize("drop", ["telnyx-signature-ed25519", "telnyx-timestamp"])
def test_missing_or_empty_headers_rejected(drop: str) -> None:
    headers = sign(BODY, KEY, NOW)
    assert "missing" in _rejects(BODY, {k: v for k, v in headers.items() if k != drop})
    assert "missing" in _rejects(BODY, {**headers, drop: ""})


def test_stale_and_future_timestamps_rejected_at_the_documented_tolerance() -> None:
    verify_signature(BODY, sign(BODY, KEY, NOW - 300), PUBLIC, now=NOW)
    verify_signature(BODY, sign(BODY, KEY, NOW + 300), PUBLIC, now=NOW)
    assert "tolerance" in _rejects(BODY, sign(BODY, KEY, NOW - 301))
    assert "tolerance" in _rejects(BODY, sign(BODY, KEY, NOW + 301))
    with pytest.raises(WebhookVerificationError):
        verify_signature(BODY, sign(BODY, KEY, NOW - 60), PUBLIC, now=NOW, tolerance_s=30)


def test_non_integer_timestamp_rejected() -> None:
    assert "integer" in _rejects(BODY, _sign_verbatim(BODY, "17e8"))
    assert "integer" in _rejects(BODY, _sign_verbatim(BODY, "yesterday"))


def test_bad_base64_and_wrong_lengths_rejected() -> None:
    headers = sign(BODY, KEY, NOW)
    raw_signature = base64.b64decode(headers["telnyx-signature-ed25519"])
    raw_key = base64.b64decode(PUBLIC)
    assert "base64" in _rejects(BODY, {**headers, "telnyx-signature-ed25519": "abc"})  # bad padding
    assert "base64" in _rejects(BODY, headers, key="abc")
    assert "base64" in _rejects(BODY, headers, key="ключ")
    assert "32 bytes" in _rejects(BODY, headers, key=base64.b64encode(raw_key[:31]).decode())
    assert "32 bytes" in _rejects(BODY, headers, key=base64.b64encode(raw_key + b"\0").decode())
    for bad in (raw_signature[:63], raw_signature + b"\0"):
        assert "64 bytes" in _rejects(BODY, {**headers, "telnyx-signature-ed25519": base64.b64encode(bad).decode()})
    flipped = bytes([raw_signature[0] ^ 1]) + raw_signature[1:]
    assert "match" in _rejects(BODY, {**headers, "telnyx-signature-ed25519": base64.b64encode(flipped).decode()})


@pytest.mark.parametrize("respell", [
    unused_bits_flipped,
    lambda s: s + "!",
    lambda s: s[:40] + "\t" + s[40:],
    lambda s: s[:10] + "*" + s[10:],
    lambda s: s.rstrip("="),
])
def test_a_re_spelled_signature_is_refused(respell) -> None:
    headers = sign(BODY, KEY, NOW)
    respelled = respell(headers["telnyx-signature-ed25519"])
    assert base64.b64decode(respelled + "==") == base64.b64decode(headers["telnyx-signature-ed25519"])
    reason = _rejects(BODY, {**headers, "telnyx-signature-ed25519": respelled})
    assert "base64" in reason


def test_the_replay_fingerprint_is_the_signature_bytes() -> None:
    headers = sign(BODY, KEY, NOW)
    assert replay_fingerprint(headers) == base64.b64decode(headers["telnyx-signature-ed25519"])
    assert replay_fingerprint({k.upper(): v for k, v in headers.items()}) == replay_fingerprint(headers)


# -- replays -----------------------------------------------------------------------------------


def test_replay_guard_rejects_an_exact_replay_only() -> None:
    guard = ReplayGuard()
    first = sign(BODY, KEY, NOW)
    event = verify_webhook(BODY, first, PUBLIC, replay_guard=guard, now=NOW)
    assert event.event_type == "call.initiated"
    with pytest.raises(WebhookVerificationError, match="replayed"):
        verify_webhook(BODY, first, PUBLIC, replay_guard=guard, now=NOW + 1)
    # Same event re-signed later (a Telnyx retry re-signs) is not a replay.
    verify_webhook(BODY, sign(BODY, KEY, NOW + 1), PUBLIC, replay_guard=guard, now=NOW + 1)
    # Header spelling does not matter: the replay is recognised by value.
    with pytest.raises(WebhookVerificationError, match="replayed"):
        guard.check({k.upper(): v for k, v in first.items()}, now=NOW + 2)


def test_replay_guard_forgets_after_the_tolerance_and_stays_bounded() -> None:
    guard = ReplayGuard(tolerance_s=300, max_entries=3)
    for offset in range(5):
        guard.check(sign(BODY, KEY, NOW + offset), now=NOW + offset)
        assert len(guard) <= 3
    late = ReplayGuard(tolerance_s=300)
    late.check(sign(BODY, KEY, NOW), now=NOW)
    late.check(sign(BODY, KEY, NOW + 301), now=NOW + 301)  # expires the first
    assert len(late) == 1
    # A replay of the first now fails the freshness check instead.
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(BODY, sign(BODY, KEY, NOW), PUBLIC, replay_guard=late, now=NOW + 301)


def test_unverified_requests_do_not_reach_the_replay_guard() -> None:
    guard = ReplayGuard()
    headers = sign(BODY, KEY, NOW)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY + b"x", headers, PUBLIC, replay_guard=guard, now=NOW)
    assert len(guard) == 0
    verify_webhook(BODY, headers, PUBLIC, replay_guard=guard, now=NOW)


# -- envelopes -----------------------------------------------------------------------------------


def test_parse_event_reads_the_documented_envelope() -> None:
    body = (b'{"data":{"record_type":"event","event_type":"call.hangup","id":"0ccc7b54",'
            b'"occurred_at":"2018-02-02T22:25:27.521992Z","payload":{"call_control_id":"v3:x",'
            b'"client_state":"aGVsbG8=","hangup_cause":"normal_clearing"}},'
            b'"meta":{"attempt":2,"delivered_to":"https://example.com/webhooks"}}')
    event = parse_event(body)
    assert (event.event_type, event.id, event.attempt) == ("call.hangup", "0ccc7b54", 2)
    assert event.call_control_id == "v3:x"
    assert event.client_state == b"hello"
    assert event.payload["hangup_cause"] == "normal_clearing"
    assert event.occurred_at.year == 2018


@pytest.mark.parametrize("body", [
    b"not json",
    b"[]",
    b'{"meta":{}}',
    b'{"data":"x"}',
    b'{"data":{"id":"1","occurred_at":"2018-02-02T22:25:27Z","payload":{}}}',
    b'{"data":{"event_type":"call.hangup","occurred_at":"2018-02-02T22:25:27Z"}}',
    b'{"data":{"event_type":"call.hangup","id":"1","occurred_at":"yesterday"}}',
    b'{"data":{"event_type":"call.hangup","id":"1","occurred_at":"2018-02-02T22:25:27Z","payload":[]}}',
    b'{"data":{"event_type":"call.hangup","id":"1","occurred_at":"2018-02-02T22:25:27Z"},"meta":[]}',
])
def test_parse_event_rejects_malformed_envelopes(body: bytes) -> None:
    with pytest.raises(WebhookParseError):
        parse_event(body)


# -- interop with Telnyx's SDK -----------------------------------------------------------------------

_TAMPERINGS = [
    "none", "body_changed", "body_extended", "timestamp_changed", "timestamp_spaces", "timestamp_plus",
    "timestamp_garbage", "signature_bit", "signature_short", "signature_junk_chars", "signature_unpadded",
    "signature_empty", "signature_missing", "timestamp_missing", "wrong_key", "key_short", "key_junk",
    "headers_upper", "signature_trailing_bits",
]
# Re-spellings of a valid signature the SDK's lenient base64 accepts and we refuse on purpose:
# each would otherwise look like a new request to a replay guard.
_NON_CANONICAL = frozenset({"signature_junk_chars", "signature_trailing_bits"})


def _tamper(kind: str, body: bytes, stamp: int) -> tuple[bytes, dict[str, str], str]:
    headers = sign(body, KEY, stamp)
    key = PUBLIC
    sig = headers["telnyx-signature-ed25519"]
    raw_sig = base64.b64decode(sig)
    if kind == "body_changed":
        body = body[:-1] + bytes([body[-1] ^ 1]) if body else b"x"
    elif kind == "body_extended":
        body += b"\n"
    elif kind == "timestamp_changed":
        headers["telnyx-timestamp"] = str(stamp + 1)
    elif kind == "timestamp_spaces":
        headers = _sign_verbatim(body, f" {stamp} ")
    elif kind == "timestamp_plus":
        headers = _sign_verbatim(body, f"+{stamp}")
    elif kind == "timestamp_garbage":
        headers = _sign_verbatim(body, f"{stamp}s")
    elif kind == "signature_bit":
        headers["telnyx-signature-ed25519"] = base64.b64encode(bytes([raw_sig[0] ^ 0x80]) + raw_sig[1:]).decode()
    elif kind == "signature_short":
        headers["telnyx-signature-ed25519"] = base64.b64encode(raw_sig[:-1]).decode()
    elif kind == "signature_junk_chars":
        headers["telnyx-signature-ed25519"] = sig[:10] + "!*" + sig[10:]
    elif kind == "signature_trailing_bits":
        headers["telnyx-signature-ed25519"] = unused_bits_flipped(sig)
    elif kind == "signature_unpadded":
        headers["telnyx-signature-ed25519"] = sig.rstrip("=")
    elif kind == "signature_empty":
        headers["telnyx-signature-ed25519"] = ""
    elif kind == "signature_missing":
        del headers["telnyx-signature-ed25519"]
    elif kind == "timestamp_missing":
        del headers["telnyx-timestamp"]
    elif kind == "wrong_key":
        key = OTHER_PUBLIC
    elif kind == "key_short":
        key = base64.b64encode(base64.b64decode(PUBLIC)[:31]).decode()
    elif kind == "key_junk":
        key = PUBLIC + "\n"
    elif kind == "headers_upper":
        headers = {k.upper(): v for k, v in headers.items()}
    return body, headers, key


@given(
    text=st.text(max_size=300),
    offset=st.integers(min_value=-420, max_value=420),
    kind=st.sampled_from(_TAMPERINGS),
)
def test_we_accept_exactly_what_the_telnyx_sdk_accepts(text: str, offset: int, kind: str) -> None:
    body, headers, key = _tamper(kind, text.encode(), NOW + offset)
    ours = _ours_accepts(body, headers, key, NOW)
    theirs = _sdk_accepts(body, headers, key, NOW)
    if kind in _NON_CANONICAL:
        assert not ours and theirs == (abs(offset) <= 300), (kind, offset, theirs)
        return
    assert ours == theirs, (kind, offset, ours, theirs)
    if kind in ("none", "headers_upper", "key_junk"):
        assert ours == (abs(offset) <= 300)


@given(text=st.text(max_size=300), stamp=st.integers(min_value=0, max_value=4_000_000_000))
def test_signatures_we_produce_verify_under_the_sdk(text: str, stamp: int) -> None:
    body = text.encode()
    headers = sign(body, KEY, stamp)
    assert _sdk_accepts(body, headers, PUBLIC, stamp)
    assert not _sdk_accepts(body + b"!", headers, PUBLIC, stamp)
