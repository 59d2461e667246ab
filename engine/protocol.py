"""Telnyx media-streaming WebSocket frames, parsed and serialized without IO.

Telnyx -> app: ``connected``, ``start``, ``media``, ``dtmf``, ``mark``, ``stop``,
``error`` (see ``docs/telnyx-protocol.md`` §3). Counters arrive as JSON
strings; unknown fields are ignored. :func:`parse` never raises: anything it cannot
read comes back as :class:`Malformed` with a reason, for the caller to count.

App -> Telnyx: ``media`` (bare codec bytes, base64), ``clear`` and ``mark``.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_MEDIA_PAYLOAD = 32_000
"""Upper bound on one inbound media payload (1 s of L16 at 16 kHz); larger is malformed."""


@dataclass(frozen=True, slots=True)
class Connected:
    version: str
    auth_token: str | None = None


@dataclass(frozen=True, slots=True)
class Start:
    stream_id: str
    call_control_id: str
    encoding: str
    sample_rate: int
    channels: int = 1
    call_session_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    client_state: str | None = None
    custom_parameters: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(slots=True)
class Media:
    """One inbound audio payload. ``seq`` orders media frames only (``chunk`` when present)."""

    seq: int
    payload: bytes
    track: str
    timestamp: int | None


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str
    occurred_at: str | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_control_id: str | None = None


@dataclass(frozen=True, slots=True)
class Error:
    code: int | None
    title: str
    detail: str


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A well-formed frame of an event type this engine does not know (tolerated, counted)."""

    event: str


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


Frame = Connected | Start | Media | Dtmf | Mark | Stop | Error | UnknownEvent | Malformed


def _int(value: Any) -> int:
    # Telnyx sends counters as strings ("4"); tolerate real ints too, but not bools or floats.
    if type(value) is int:
        return value
    if type(value) is str:
        return int(value)
    raise ValueError(f"expected an integer counter, got {type(value).__name__}")


def _opt_str(value: Any) -> str | None:
    return value if type(value) is str else None


def _parse_media(msg: dict[str, Any]) -> Frame:
    media = msg.get("media")
    if type(media) is not dict:
        return Malformed("media frame without a media object")
    payload = media.get("payload")
    if type(payload) is not str or not payload:
        return Malformed("media frame without a payload")
    if len(payload) > MAX_MEDIA_PAYLOAD * 4 // 3 + 4:
        return Malformed("media payload too large")
    try:
        audio = binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError):
        return Malformed("media payload is not valid base64")
    if not audio:
        return Malformed("media payload is empty")
    counter = media.get("chunk")
    if counter is None:
        counter = msg.get("sequence_number")
    try:
        seq = _int(counter)
        timestamp = media.get("timestamp")
        ts = None if timestamp is None else _int(timestamp)
    except ValueError as exc:
        return Malformed(f"media frame counter: {exc}")
    track = media.get("track")
    return Media(seq, audio, track if type(track) is str else "inbound", ts)


def _parse_start(msg: dict[str, Any]) -> Frame:
    start = msg.get("start")
    if type(start) is not dict:
        return Malformed("start frame without a start object")
    stream_id = msg.get("stream_id")
    if type(stream_id) is not str:
        # Telnyx puts stream_id at the top level; accept it nested too, as some proxies do.
        stream_id = start.get("stream_id")
    call_control_id = start.get("call_control_id")
    if type(stream_id) is not str or type(call_control_id) is not str:
        return Malformed("start frame without stream_id or call_control_id")
    fmt = start.get("media_format")
    if type(fmt) is not dict:
        return Malformed("start frame without media_format")
    encoding = fmt.get("encoding")
    if type(encoding) is not str:
        return Malformed("start frame without media_format.encoding")
    try:
        sample_rate = _int(fmt.get("sample_rate", 8000))
        channels = _int(fmt.get("channels", 1))
    except ValueError as exc:
        return Malformed(f"start frame media_format: {exc}")
    params = start.get("custom_parameters")
    custom = {str(k): str(v) for k, v in params.items()} if type(params) is dict else {}
    tags = start.get("tags")
    return Start(
        stream_id=stream_id,
        call_control_id=call_control_id,
        encoding=encoding,
        sample_rate=sample_rate,
        channels=channels,
        call_session_id=_opt_str(start.get("call_session_id")),
        from_number=_opt_str(start.get("from")),
        to_number=_opt_str(start.get("to")),
        client_state=_opt_str(start.get("client_state")),
        custom_parameters=custom,
        tags=tuple(t for t in tags if type(t) is str) if type(tags) is list else (),
    )


def _parse_dtmf(msg: dict[str, Any]) -> Frame:
    dtmf = msg.get("dtmf")
    digit = dtmf.get("digit") if type(dtmf) is dict else None
    if type(digit) is not str or len(digit) != 1 or digit not in "0123456789*#ABCDabcd":
        return Malformed("dtmf frame without a valid digit")
    return Dtmf(digit.upper(), _opt_str(msg.get("occurred_at")))


def _parse_mark(msg: dict[str, Any]) -> Frame:
    mark = msg.get("mark")
    name = mark.get("name") if type(mark) is dict else None
    if type(name) is not str:
        return Malformed("mark frame without a name")
    return Mark(name)


def _parse_stop(msg: dict[str, Any]) -> Frame:
    stop = msg.get("stop")
    return Stop(_opt_str(stop.get("call_control_id")) if type(stop) is dict else None)


def _parse_error(msg: dict[str, Any]) -> Frame:
    body: Any = msg.get("payload")  # untyped JSON: checked by type() below
    if type(body) is not dict:
        body = msg.get("error") if type(msg.get("error")) is dict else {}
    code = body.get("code")
    try:
        code_int = None if code is None else _int(code)
    except ValueError:
        code_int = None
    return Error(code_int, str(body.get("title", "")), str(body.get("detail", "")))


def _parse_connected(msg: dict[str, Any]) -> Frame:
    return Connected(str(msg.get("version", "")), _opt_str(msg.get("x-telnyx-streaming-auth-token")))


_PARSERS = {
    "media": _parse_media,
    "start": _parse_start,
    "dtmf": _parse_dtmf,
    "mark": _parse_mark,
    "stop": _parse_stop,
    "error": _parse_error,
    "connected": _parse_connected,
}


def parse(data: str | bytes) -> Frame:
    """One WebSocket message from Telnyx -> a typed frame, or :class:`Malformed`."""
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Malformed("not valid JSON")
    if type(msg) is not dict:
        return Malformed("frame is not a JSON object")
    event = msg.get("event")
    if type(event) is not str:
        return Malformed("frame without an event name")
    parser = _PARSERS.get(event)
    if parser is None:
        return UnknownEvent(event)
    try:
        return parser(msg)
    except Exception as exc:  # defensive: a parser bug must never end the call
        return Malformed(f"{event} frame: {type(exc).__name__}")


# -- app -> Telnyx ----------------------------------------------------------------------

_MEDIA_PREFIX = '{"event":"media","media":{"payload":"'
_MEDIA_SUFFIX = '"}}'

CLEAR = '{"event":"clear"}'


def serialize_media(audio: bytes) -> str:
    """A bidirectional-RTP media frame: bare codec bytes, base64 (never needs JSON escaping)."""
    return _MEDIA_PREFIX + binascii.b2a_base64(audio, newline=False).decode("ascii") + _MEDIA_SUFFIX


def serialize_mark(name: str) -> str:
    return orjson.dumps({"event": "mark", "mark": {"name": name}}).decode()
