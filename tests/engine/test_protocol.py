import base64

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import protocol
from engine.protocol import (
    CLEAR,
    Connected,
    Dtmf,
    Error,
    Malformed,
    Mark,
    Media,
    Start,
    Stop,
    UnknownEvent,
    parse,
    serialize_mark,
    serialize_media,
)

START = {
    "event": "start",
    "sequence_number": "1",
    "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
    "start": {
        "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
        "call_control_id": "v3:abc",
        "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
        "from": "+13122010094",
        "to": "+13122123456",
        "tags": ["TAG1", 7],
        "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        "custom_parameters": {"customer_id": "customer_123"},
        "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        "future_field": {"ignored": True},
    },
}


def media(chunk="2", payload=b"\xff" * 160, **extra):
    body = {"track": "inbound", "chunk": chunk, "timestamp": "5", "payload": base64.b64encode(payload).decode()}
    body.update(extra)
    return orjson.dumps({"event": "media", "sequence_number": "4", "stream_id": "s", "media": body})


def test_start_frame_parses_documented_fields_and_ignores_unknown_ones():
    frame = parse(orjson.dumps(START))
    assert isinstance(frame, Start)
    assert frame.stream_id == START["stream_id"]
    assert frame.call_control_id == "v3:abc"
    assert (frame.encoding, frame.sample_rate, frame.channels) == ("PCMU", 8000, 1)
    assert frame.from_number == "+13122010094" and frame.to_number == "+13122123456"
    assert frame.client_state == "aGF2ZSBhIG5pY2UgZGF5ID1d"
    assert frame.custom_parameters == {"customer_id": "customer_123"}
    assert frame.tags == ("TAG1",)


def test_media_counters_arrive_as_strings_and_chunk_orders_media():
    frame = parse(media(chunk="17"))
    assert isinstance(frame, Media)
    assert frame.seq == 17 and frame.timestamp == 5 and frame.track == "inbound"
    assert frame.payload == b"\xff" * 160


def test_media_without_chunk_falls_back_to_sequence_number():
    msg = {"event": "media", "sequence_number": "9", "media": {"payload": base64.b64encode(b"ab").decode()}}
    frame = parse(orjson.dumps(msg))
    assert isinstance(frame, Media) and frame.seq == 9 and frame.timestamp is None


def test_other_telnyx_frames():
    assert parse('{"event":"connected","version":"1.0.0"}') == Connected("1.0.0")
    assert parse('{"event":"dtmf","stream_id":"s","occurred_at":"t","dtmf":{"digit":"5"}}') == Dtmf("5", "t")
    assert parse('{"event":"mark","stream_id":"s","mark":{"name":"u1"}}') == Mark("u1")
    assert parse('{"event":"stop","stop":{"call_control_id":"v3:abc"}}') == Stop("v3:abc")
    err = parse('{"event":"error","payload":{"code":100003,"title":"malformed_frame","detail":"x"}}')
    assert err == Error(100003, "malformed_frame", "x")
    assert parse('{"event":"something_new"}') == UnknownEvent("something_new")


def test_malformed_frames_come_back_typed_with_a_reason():
    cases = {
        b"not json": "JSON",
        b"[1,2]": "object",
        b'{"no":"event"}': "event",
        b'{"event":"media"}': "media object",
        b'{"event":"media","media":{"payload":"@@@@"}}': "base64",
        media(chunk="x"): "counter",
        media(chunk=True): "counter",
        b'{"event":"start","start":{}}': "stream_id",
        b'{"event":"dtmf","dtmf":{"digit":"55"}}': "digit",
        b'{"event":"mark","mark":{}}': "name",
    }
    for raw, reason in cases.items():
        frame = parse(raw)
        assert isinstance(frame, Malformed), raw
        assert reason in frame.reason, (raw, frame.reason)


def test_oversized_media_payload_is_malformed():
    frame = parse(media(payload=b"\x00" * (protocol.MAX_MEDIA_PAYLOAD + 10)))
    assert isinstance(frame, Malformed) and "too large" in frame.reason


def test_serialized_frames_match_the_documented_shapes():
    assert orjson.loads(serialize_media(b"\x01\x02\xff")) == {
        "event": "media",
        "media": {"payload": base64.b64encode(b"\x01\x02\xff").decode()},
    }
    assert orjson.loads(serialize_mark('a"b')) == {"event": "mark", "mark": {"name": 'a"b'}}
    assert orjson.loads(CLEAR) == {"event": "clear"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=8,
)
frame_like = st.fixed_dictionaries(
    {"event": st.sampled_from(["media", "start", "dtmf", "mark", "stop", "error", "connected", "x"])},
    optional={
        "media": json_values, "start": json_values, "dtmf": json_values, "mark": json_values,
        "stop": json_values, "payload": json_values, "sequence_number": json_values, "stream_id": json_values,
    },
)

FRAME_TYPES = (Connected, Start, Media, Dtmf, Mark, Stop, Error, UnknownEvent, Malformed)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw):
    assert isinstance(parse(raw), FRAME_TYPES)


@pytest.mark.slow
@settings(max_examples=500)
@given(frame_like)
def test_arbitrary_frame_shaped_json_never_raises(msg):
    assert isinstance(parse(orjson.dumps(msg)), FRAME_TYPES)
