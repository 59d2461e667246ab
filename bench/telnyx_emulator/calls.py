"""Call state and lifecycle: what Telnyx does between the REST commands and the webhooks.

Outbound: ``call.initiated`` (outgoing, ``bridging``) at once, then after the number's
ring delay one of ``call.answered`` (``human``, ``voicemail``), ``call.hangup``
``user_busy`` (``busy``) or, once ``timeout_secs`` runs out, ``call.hangup`` ``timeout``
(``no_answer``). Incoming: ``call.initiated`` (incoming, ``parked``) and a wait for
``answer`` / ``reject``. Once answered, a ``stream_url`` starts the media stream and AMD
(``answering_machine_detection``) reports human or machine; voicemail greetings end with
a beep. ``hangup_source`` is from the app's point of view: the app is the caller on its
outbound calls and the callee on incoming ones.

Every emulated delay (ring, timeouts, speech, AMD, greeting, gather timeouts) is
multiplied by ``time_scale`` so tests can run a 30 s ring timeout in a moment; media
always runs in real time, and so does ``time_limit_secs``, which Telnyx counts from the
answer and which bounds that real-time media.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import secrets
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from .media import CalleeFactory, Impairment, MediaStream, SilentCallee
from .schema import DOCS_ONLY_FIELDS, EVENT_FIELDS, REQUESTS

if TYPE_CHECKING:
    from .webhooks import WebhookDispatcher

__all__ = ["ApiProblem", "CallInfo", "DialLogEntry", "EventFields", "NumberBehaviour", "Switchboard", "check_request"]

log = logging.getLogger(__name__)

Answer = Literal["human", "busy", "no_answer", "voicemail"]
EventFields = Literal["sdk", "docs"]
"""Which payload fields webhooks carry: the SDK's event models only, or those plus the
fields Telnyx's docs show in their examples (:data:`~.schema.DOCS_ONLY_FIELDS`)."""
ACTIONS = frozenset({
    "answer", "hangup", "reject", "streaming_start", "streaming_stop", "speak", "gather", "gather_stop",
    "send_dtmf", "transfer", "record_start", "record_stop", "record_pause", "record_resume",
    "playback_start", "playback_stop", "client_state_update",
})
_NEEDS_ANSWER = frozenset({"streaming_start", "speak", "gather", "send_dtmf", "record_start", "playback_start"})
_DTMF = set("0123456789ABCD*#wW")
SPEAK_CHARS_PER_S = 15.0  # roughly 150 words a minute
# reject cause -> (call.hangup hangup_cause, the SIP response the SDK's docstring names).
# The SDK lists no hangup_cause for a 480; "unspecified" is the one it allows for anything else.
_REJECT_CAUSES = {"CALL_REJECTED": ("call_rejected", "603"), "USER_BUSY": ("user_busy", "486"),
                  "NOT_FOUND": ("not_found", "404"), "TEMPORARILY_UNAVAILABLE": ("unspecified", "480")}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class ApiProblem(Exception):
    """A Telnyx error response: HTTP status plus one ``errors[]`` entry."""

    def __init__(self, status: int, code: str, title: str, detail: str = "", pointer: str | None = None) -> None:
        super().__init__(f"{status} {code} {title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail or title
        self.pointer = pointer

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "title": self.title, "detail": self.detail,
                                 "meta": {"url": f"https://developers.telnyx.com/docs/overview/errors/{self.code}"}}
        if self.pointer:
            error["source"] = {"pointer": self.pointer}
        return {"errors": [error]}


def missing(name: str) -> ApiProblem:
    return ApiProblem(422, "10004", "Missing required parameter", f"The '{name}' parameter is required.",
                      f"/{name}")


def _named(key: str) -> str:
    """A key for an error message: shown when it looks like a parameter name, else not echoed."""
    return repr(key) if len(key) <= 64 and key.replace("_", "").isalnum() and key.isascii() else "a key"


def check_request(request: str, body: dict[str, Any], *, unknown_keys: bool = False) -> None:
    """Check a Call Control body against the SDK's parameters for ``request`` (``dial`` or an
    action): required keys present (10004), enum values allowed and, unless ``unknown_keys``,
    no key the SDK does not define (both 422, 10015)."""
    shape = REQUESTS[request]
    for name in sorted(shape.required):
        if body.get(name) in (None, "", []):
            raise missing(name)
    if not unknown_keys:
        for key in body:
            if key not in shape.keys:
                raise ApiProblem(422, "10015", "Bad Request", f"{_named(key)} is not a parameter of {request}.",
                                 f"/{key}" if _named(key) != "a key" else None)
    for name, allowed in (shape.enums or {}).items():
        value = body.get(name)
        if value is not None and (isinstance(value, (dict, list, bool)) or value not in allowed):
            shown = ", ".join(sorted(map(str, allowed))) if len(allowed) <= 8 else f"one of {len(allowed)} values"
            raise ApiProblem(422, "10015", "Bad Request", f"{name} must be {shown}.", f"/{name}")


def check_client_state(value: Any) -> str | None:
    """Telnyx requires client_state to be base64 (else 422, 90017)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            base64.b64decode(value, validate=True)
            return value
        except (binascii.Error, ValueError):
            pass
    raise ApiProblem(422, "90017", "Invalid client_state", "client_state must be a valid Base64 string.",
                     "/client_state")


@dataclass(frozen=True, slots=True)
class NumberBehaviour:
    """How the number answers an outbound call (delays before ``time_scale``)."""

    answer: Answer = "human"
    ring_s: float = 1.0
    amd_s: float = 1.5
    """Analysis time before ``call.machine.detection.ended``."""
    greeting_s: float = 4.0
    """Voicemail greeting, from answer to the beep (``call.machine.greeting.ended``)."""


@dataclass(frozen=True, slots=True)
class DialLogEntry:
    to: str
    from_: str
    command_id: str | None
    connection_id: str
    call_control_id: str
    at: float
    """Wall-clock time the dial was accepted."""


@dataclass(eq=False)
class _Gather:
    minimum: int
    maximum: int
    terminator: str
    valid: str
    timeout_s: float
    inter_digit_s: float
    gather_id: str | None
    digits: str = ""
    timer: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Recording:
    recording_id: str
    format: str
    channels: str
    started_at: float
    paused: bool = False


@dataclass(eq=False)
class CallInfo:
    """One call leg as the emulator knows it; also what a callee is handed."""

    call_control_id: str
    call_leg_id: str
    call_session_id: str
    connection_id: str
    from_: str
    to: str
    direction: Literal["incoming", "outgoing"]
    state: str
    client_state: str | None = None
    webhook_url: str | None = None
    behaviour: NumberBehaviour = field(default_factory=NumberBehaviour)
    params: dict[str, Any] = field(default_factory=dict)
    """The dial (or answer) body as sent."""
    command_id: str | None = None
    user_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    hangup_cause: str | None = None
    hangup_source: str | None = None
    sip_hangup_cause: str | None = None
    stream: MediaStream | None = None
    sent_dtmf: list[str] = field(default_factory=list)
    transferred_to: str | None = None
    recordings: list[str] = field(default_factory=list)
    _board: Switchboard | None = field(default=None, repr=False)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set, repr=False)
    _gather: _Gather | None = field(default=None, repr=False)
    _recording: _Recording | None = field(default=None, repr=False)
    _speech: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _playback: asyncio.Task[None] | None = field(default=None, repr=False)
    _ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def is_alive(self) -> bool:
        return self.state != "hangup"

    @property
    def answered(self) -> bool:
        return self.answered_at is not None and self.is_alive

    async def press(self, digits: str, interval_s: float = 0.1) -> None:
        """The far end presses keys: ``dtmf`` frames on the stream, ``call.dtmf.received``."""
        assert self._board is not None
        await self._board.press(self, digits, interval_s)

    def hang_up(self) -> bool:
        """The far end hangs up."""
        assert self._board is not None
        return self._board.remote_hangup(self)

    async def wait_ended(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ended.wait(), timeout)


class Switchboard:
    """All calls, their timers and their webhooks."""

    def __init__(self, *, hooks: WebhookDispatcher, session: aiohttp.ClientSession,
                 callee_factory: CalleeFactory | None = None, time_scale: float = 1.0,
                 impairment: Impairment | None = None, default_behaviour: NumberBehaviour | None = None,
                 incoming_timeout_s: float = 30.0, event_fields: EventFields = "sdk",
                 unknown_keys: bool = False) -> None:
        self.hooks = hooks
        self.event_fields: EventFields = event_fields
        self.unknown_keys = unknown_keys
        """Accept request keys the SDK does not define (off: they are a 422, like a bad enum)."""
        self.session = session
        self.callee_factory: CalleeFactory = callee_factory or (lambda call: SilentCallee())
        self.time_scale = time_scale
        self.impairment = impairment
        self.default_behaviour = default_behaviour or NumberBehaviour()
        self.incoming_timeout_s = incoming_timeout_s
        self.calls: dict[str, CallInfo] = {}
        self.dial_log: list[DialLogEntry] = []
        self.behaviours: dict[str, NumberBehaviour] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- plumbing --------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], call: CallInfo | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        if call is not None:
            call._tasks.add(task)
            task.add_done_callback(call._tasks.discard)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("emulator task failed", exc_info=task.exception())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds * self.time_scale))

    def emit(self, call: CallInfo, event_type: str, **fields: Any) -> None:
        """A webhook carrying only the payload fields its SDK model defines (plus the docs'
        extras when ``event_fields`` is ``"docs"``): e.g. ``call.recording.saved`` has no
        ``call_control_id`` and ``call.speak.*`` no ``from``/``to``."""
        allowed = EVENT_FIELDS[event_type]
        if self.event_fields == "docs":
            allowed = allowed | DOCS_ONLY_FIELDS.get(event_type, frozenset())
        everything = {
            "call_control_id": call.call_control_id, "call_leg_id": call.call_leg_id,
            "call_session_id": call.call_session_id, "connection_id": call.connection_id,
            "client_state": call.client_state, "from": call.from_, "to": call.to, **fields,
        }
        payload = {name: value for name, value in everything.items() if name in allowed}
        self.hooks.emit(event_type, payload, url=call.webhook_url, order_key=call.call_control_id)

    def behaviour_for(self, number: str) -> NumberBehaviour:
        return self.behaviours.get(number, self.default_behaviour)

    def _new_call(self, **fields: Any) -> CallInfo:
        call = CallInfo(
            call_control_id="v3:" + secrets.token_urlsafe(24), call_leg_id=str(uuid.uuid4()),
            call_session_id=str(uuid.uuid4()), _board=self, **fields)
        self.calls[call.call_control_id] = call
        return call

    # -- call creation -----------------------------------------------------------------------

    def dial(self, body: dict[str, Any]) -> CallInfo:
        """A validated ``POST /calls`` body."""
        to = body["to"][0] if isinstance(body["to"], list) else body["to"]
        call = self._new_call(
            connection_id=str(body["connection_id"]), from_=body["from"], to=to, direction="outgoing",
            state="bridging", client_state=body.get("client_state"), webhook_url=body.get("webhook_url"),
            behaviour=self.behaviour_for(to), params=dict(body), command_id=body.get("command_id"))
        self.dial_log.append(DialLogEntry(to, call.from_, call.command_id, call.connection_id,
                                          call.call_control_id, call.created_at))
        self._initiated(call)
        self.spawn(self._ring_outbound(call), call)
        return call

    def incoming(self, *, from_: str, to: str, connection_id: str, webhook_url: str | None = None,
                 client_state: str | None = None) -> CallInfo:
        call = self._new_call(connection_id=connection_id, from_=from_, to=to, direction="incoming",
                              state="parked", client_state=client_state, webhook_url=webhook_url)
        self._initiated(call)
        self.spawn(self._ring_incoming(call), call)
        return call

    def _initiated(self, call: CallInfo) -> None:
        self.emit(call, "call.initiated", direction=call.direction, state=call.state, caller_id_name=call.from_,
                  start_time=_iso(call.created_at), offered_codecs="PCMU,PCMA",
                  connection_codecs="PCMU,PCMA", custom_headers=None, sip_headers=None, tags=[])

    async def _ring_outbound(self, call: CallInfo) -> None:
        behaviour = call.behaviour
        await self.sleep(behaviour.ring_s)
        if behaviour.answer == "busy":
            self.end(call, cause="user_busy", source="callee", sip="486")
        elif behaviour.answer == "no_answer":
            timeout = float(call.params.get("timeout_secs") or 30)
            await self.sleep(max(0.0, timeout - behaviour.ring_s))
            cause = "no_answer" if call.params.get("retry_on_timeout") is False else "timeout"
            self.end(call, cause=cause, source="caller", sip="480")
        else:
            self._answered(call, call.params)

    async def _ring_incoming(self, call: CallInfo) -> None:
        await self.sleep(self.incoming_timeout_s)
        if call.state == "parked":
            self.end(call, cause="originator_cancel", source="caller", sip="487")

    async def _time_limit(self, call: CallInfo, seconds: float) -> None:
        # Telnyx: the leg "will be automatically terminated <time_limit_secs> after being answered".
        # It bounds the answered call, whose media runs in real time, so it is not time-scaled:
        # a scaled limit (1800 s x 0.05 = 90 s) cut real-time conversations short under load.
        await asyncio.sleep(seconds)
        self.end(call, cause="time_limit", source="unknown", sip="unspecified")

    def _answered(self, call: CallInfo, params: dict[str, Any]) -> None:
        call.state = "answered"
        call.answered_at = time.time()
        self.emit(call, "call.answered", state="answered", start_time=_iso(call.created_at),
                  custom_headers=None, sip_headers=None, tags=[])
        if params.get("time_limit_secs"):
            self.spawn(self._time_limit(call, float(params["time_limit_secs"])), call)
        if params.get("stream_url"):
            self.start_stream(call, params)
        if params.get("record") == "record-from-answer":
            self._start_recording(call, params.get("record_format") or "mp3", params.get("record_channels") or "single")
        amd = call.params.get("answering_machine_detection")
        if amd and amd != "disabled":
            self.spawn(self._detect_machine(call, amd), call)

    async def _detect_machine(self, call: CallInfo, mode: str) -> None:
        behaviour = call.behaviour
        machine = behaviour.answer == "voicemail"
        premium = mode == "premium"
        await self.sleep(behaviour.amd_s)
        if premium:
            self.emit(call, "call.machine.premium.detection.ended",
                      result="machine" if machine else "human_residence")
        else:
            self.emit(call, "call.machine.detection.ended", result="machine" if machine else "human")
        if machine and mode in ("detect_beep", "greeting_end", "premium"):
            await self.sleep(max(0.0, behaviour.greeting_s - behaviour.amd_s))
            self.emit(call, "call.machine.premium.greeting.ended" if premium else "call.machine.greeting.ended",
                      result="beep_detected")

    # -- media ---------------------------------------------------------------------------------

    def start_stream(self, call: CallInfo, params: dict[str, Any]) -> None:
        stream = MediaStream(call, dict(params), self.session, self.callee_factory, self.impairment)
        previous, call.stream = call.stream, stream
        self.spawn(self._run_stream(call, stream, previous), call)

    async def _run_stream(self, call: CallInfo, stream: MediaStream, previous: MediaStream | None) -> None:
        if previous is not None:  # one stream per call: a new one replaces the old
            await self.stop_stream(call, previous)
        failure = await stream.connect()
        if failure is not None:
            if call.stream is stream:
                call.stream = None
            self.emit(call, "streaming.failed", failure_reason=failure, stream_id=stream.stream_id,
                      stream_type="websocket", stream_params={"stream_url": stream.url, "track": stream.track})
            return
        self._stream_event(call, "streaming.started", stream)
        outcome = await stream.serve()
        if outcome == "callee_hangup":
            # The far end hung up: Telnyx stops the stream as part of the hangup.
            self.end(call, cause="normal_clearing", source="callee" if call.direction == "outgoing" else "caller",
                     sip="unspecified")
        elif outcome == "app_closed":
            await stream.stop()
            if call.stream is stream:
                call.stream = None
            self._stream_event(call, "streaming.stopped", stream)

    def _stream_event(self, call: CallInfo, event_type: str, stream: MediaStream) -> None:
        self.emit(call, event_type, stream_url=stream.url)

    async def stop_stream(self, call: CallInfo, stream: MediaStream | None = None) -> None:
        """Stop ``stream`` (default: the call's current one) and report it."""
        if stream is None:
            stream = call.stream
        if call.stream is stream:
            call.stream = None
        if stream is not None:
            await stream.stop()
            if stream.ws is not None:  # it never started if it never connected
                self._stream_event(call, "streaming.stopped", stream)

    # -- the far end ------------------------------------------------------------------------------

    async def press(self, call: CallInfo, digits: str, interval_s: float = 0.1) -> None:
        for i, digit in enumerate(digits):
            if not call.is_alive:
                return
            if i:
                await asyncio.sleep(interval_s)
            if call.stream is not None:
                await call.stream.send_dtmf(digit)
            self.emit(call, "call.dtmf.received", digit=digit)
            self._gather_digit(call, digit)

    def remote_hangup(self, call: CallInfo) -> bool:
        source = "callee" if call.direction == "outgoing" else "caller"
        return self.end(call, cause="normal_clearing", source=source, sip="unspecified")

    # -- ending ---------------------------------------------------------------------------------

    def end(self, call: CallInfo, *, cause: str, source: str, sip: str) -> bool:
        """End the call now (state first, so a second hangup sees 90018); the teardown
        and its webhooks follow in the background. False if it had already ended."""
        if not call.is_alive:
            return False
        call.state = "hangup"
        call.ended_at = time.time()
        call.hangup_cause, call.hangup_source, call.sip_hangup_cause = cause, source, sip
        current = asyncio.current_task()
        for task in list(call._tasks):
            if task is not current:
                task.cancel()
        self.spawn(self._teardown(call))
        return True

    async def _teardown(self, call: CallInfo) -> None:
        if call._gather is not None:
            self._finish_gather(call, "call_hangup")
        await self.stop_stream(call)
        self.emit(call, "call.hangup", hangup_cause=call.hangup_cause, hangup_source=call.hangup_source,
                  sip_hangup_cause=call.sip_hangup_cause, start_time=_iso(call.created_at), state="hangup",
                  call_quality_stats=self._quality(call), custom_headers=None, sip_headers=None, tags=[])
        if call._recording is not None:
            self._save_recording(call)
        call._ended.set()

    @staticmethod
    def _quality(call: CallInfo) -> dict[str, Any] | None:
        if call.answered_at is None or call.ended_at is None:
            return None
        packets = str(int((call.ended_at - call.answered_at) / 0.02))
        return {"inbound": {"mos": "4.50", "jitter_max_variance": "0.00", "jitter_packet_count": "0",
                            "packet_count": packets, "skip_packet_count": "0"},
                "outbound": {"packet_count": packets, "skip_packet_count": "0"}}

    # -- commands -------------------------------------------------------------------------------

    def act(self, call: CallInfo, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one action; returns ``data`` or raises :class:`ApiProblem`."""
        check_request(action, body, unknown_keys=self.unknown_keys)
        client_state = check_client_state(body.get("client_state"))
        if not call.is_alive:
            raise ApiProblem(422, "90018", "Call has already ended",
                             "This call is no longer active and can't receive commands.")
        if action in _NEEDS_ANSWER and not call.answered:
            raise ApiProblem(422, "90034", "Call not answered yet", "This command requires an answered call.")
        # A command's client_state is echoed by the webhooks it causes, and after.
        previous = call.client_state
        if client_state is not None:
            call.client_state = client_state
        try:
            getattr(self, f"_do_{action}")(call, body)
        except ApiProblem:
            call.client_state = previous
            raise
        return {"result": "ok"}

    def _do_answer(self, call: CallInfo, body: dict[str, Any]) -> None:
        if call.direction == "outgoing":
            raise ApiProblem(422, "90102", "Answer not allowed", "Outbound calls cannot be answered.")
        if call.answered:
            return
        if body.get("webhook_url"):
            call.webhook_url = body["webhook_url"]
        call.params = {**call.params, **body}
        self._answered(call, body)

    def _do_hangup(self, call: CallInfo, body: dict[str, Any]) -> None:
        app = "caller" if call.direction == "outgoing" else "callee"
        cause = "originator_cancel" if call.state == "bridging" else "normal_clearing"
        self.end(call, cause=cause, source=app, sip="unspecified")

    def _do_reject(self, call: CallInfo, body: dict[str, Any]) -> None:
        # (cause was checked against the SDK's four by check_request.)
        if call.direction == "outgoing" or call.answered:
            raise ApiProblem(422, "10015", "Bad Request", "Only an incoming call that is not answered can be rejected.")
        hangup_cause, sip = _REJECT_CAUSES[body["cause"]]
        self.end(call, cause=hangup_cause, source="callee", sip=sip)

    def _do_streaming_start(self, call: CallInfo, body: dict[str, Any]) -> None:
        if not body.get("stream_url"):
            raise missing("stream_url")
        self.start_stream(call, body)

    def _do_streaming_stop(self, call: CallInfo, body: dict[str, Any]) -> None:
        if call.stream is None:
            raise ApiProblem(422, "90048", "Media streaming not active", "This call has no active media stream.")
        stream, call.stream = call.stream, None  # detached now; the socket closes in the background
        self.spawn(self.stop_stream(call, stream))

    def _do_speak(self, call: CallInfo, body: dict[str, Any]) -> None:
        self.spawn(self._speak(call, str(body["payload"])), call)

    async def _speak(self, call: CallInfo, text: str) -> None:
        async with call._speech:  # speak commands queue up behind each other
            self.emit(call, "call.speak.started")
            status = "completed"
            try:
                await self.sleep(max(0.3, len(text) / SPEAK_CHARS_PER_S))
            except asyncio.CancelledError:
                status = "call_hangup"  # end() cancels the call's tasks
                raise
            finally:
                self.emit(call, "call.speak.ended", status=status)

    def _do_gather(self, call: CallInfo, body: dict[str, Any]) -> None:
        if call._gather is not None:
            self._finish_gather(call, "cancelled")
        gather = _Gather(
            minimum=int(body.get("minimum_digits") or 1), maximum=int(body.get("maximum_digits") or 128),
            terminator=body.get("terminating_digit") or "#", valid=body.get("valid_digits") or "0123456789#*",
            timeout_s=int(body.get("timeout_millis") or 60000) / 1000,
            inter_digit_s=int(body.get("inter_digit_timeout_millis") or 5000) / 1000,
            gather_id=body.get("gather_id"))
        first = int(body.get("initial_timeout_millis") or 5000) / 1000
        call._gather = gather
        gather.timer = self.spawn(self._gather_timeout(call, gather, min(first, gather.timeout_s)), call)

    async def _gather_timeout(self, call: CallInfo, gather: _Gather, seconds: float) -> None:
        await self.sleep(seconds)
        if call._gather is gather:
            gather.timer = None
            status = "timeout" if not gather.digits else "valid" if len(gather.digits) >= gather.minimum else "invalid"
            self._finish_gather(call, status)

    def _gather_digit(self, call: CallInfo, digit: str) -> None:
        gather = call._gather
        if gather is None:
            return
        if digit == gather.terminator:
            self._finish_gather(call, "valid" if len(gather.digits) >= gather.minimum else "invalid")
            return
        if digit not in gather.valid:
            return
        gather.digits += digit
        if len(gather.digits) >= gather.maximum:
            self._finish_gather(call, "valid")
            return
        if gather.timer is not None:
            gather.timer.cancel()
        gather.timer = self.spawn(self._gather_timeout(call, gather, gather.inter_digit_s), call)

    def _finish_gather(self, call: CallInfo, status: str) -> None:
        gather, call._gather = call._gather, None
        if gather is None:
            return
        if gather.timer is not None and gather.timer is not asyncio.current_task():
            gather.timer.cancel()
        extra = {"gather_id": gather.gather_id} if gather.gather_id else {}
        self.emit(call, "call.gather.ended", digits=gather.digits, status=status, **extra)

    def _do_gather_stop(self, call: CallInfo, body: dict[str, Any]) -> None:
        self._finish_gather(call, "cancelled")

    def _do_send_dtmf(self, call: CallInfo, body: dict[str, Any]) -> None:
        digits = body.get("digits")
        if not digits:
            raise missing("digits")
        if not isinstance(digits, str) or not set(digits) <= _DTMF:
            raise ApiProblem(422, "10015", "Bad Request", "digits may only contain 0-9, A-D, *, #, w and W.",
                             "/digits")
        call.sent_dtmf.append(digits)

    def _do_transfer(self, call: CallInfo, body: dict[str, Any]) -> None:
        if not body.get("to"):
            raise missing("to")
        call.transferred_to = body["to"]
        self.emit(call, "call.bridged", state="bridged")

    def _do_record_start(self, call: CallInfo, body: dict[str, Any]) -> None:
        if call._recording is None:
            self._start_recording(call, body["format"], body["channels"])

    def _start_recording(self, call: CallInfo, fmt: str, channels: str) -> None:
        call._recording = _Recording(str(uuid.uuid4()), fmt, channels, time.time())

    def _do_record_stop(self, call: CallInfo, body: dict[str, Any]) -> None:
        if call._recording is not None:
            self._save_recording(call)

    def _do_record_pause(self, call: CallInfo, body: dict[str, Any]) -> None:
        if call._recording is not None:
            call._recording.paused = True

    def _do_record_resume(self, call: CallInfo, body: dict[str, Any]) -> None:
        if call._recording is not None:
            call._recording.paused = False

    def _save_recording(self, call: CallInfo) -> None:
        recording, call._recording = call._recording, None
        assert recording is not None
        url = f"https://recordings.emulator.invalid/{recording.recording_id}.{recording.format}"
        call.recordings.append(url)
        ended = call.ended_at or time.time()
        # recording_id, format, start_time and end_time are docs-only (event_fields="docs").
        self.emit(call, "call.recording.saved", recording_id=recording.recording_id, format=recording.format,
                  channels=recording.channels, recording_urls={recording.format: url},
                  public_recording_urls={recording.format: url},
                  recording_started_at=_iso(recording.started_at), recording_ended_at=_iso(ended),
                  start_time=_iso(recording.started_at), end_time=_iso(ended))

    def _do_playback_start(self, call: CallInfo, body: dict[str, Any]) -> None:
        if not (body.get("audio_url") or body.get("media_name") or body.get("playback_content")):
            raise missing("audio_url")
        if call._playback is not None:
            call._playback.cancel()
        media = {"media_url": body.get("audio_url"), "media_name": body.get("media_name"),
                 "overlay": bool(body.get("overlay", False))}
        call._playback = self.spawn(self._playback(call, media), call)

    async def _playback(self, call: CallInfo, media: dict[str, Any]) -> None:
        self.emit(call, "call.playback.started", **media)
        status = "completed"
        try:
            await self.sleep(2.0)
        except asyncio.CancelledError:
            status = "cancelled" if call.is_alive else "call_hangup"
            raise
        finally:
            self.emit(call, "call.playback.ended", status=status, **media)
            if call._playback is asyncio.current_task():
                call._playback = None

    def _do_playback_stop(self, call: CallInfo, body: dict[str, Any]) -> None:
        if call._playback is not None:
            call._playback.cancel()

    def _do_client_state_update(self, call: CallInfo, body: dict[str, Any]) -> None:
        pass  # act() already took the (required) client_state

    # -- lifecycle ------------------------------------------------------------------------------------

    def status(self, call: CallInfo) -> dict[str, Any]:
        """``GET /calls/{id}`` data."""
        end = call.ended_at or time.time()
        duration = math.floor(end - call.answered_at) if call.answered_at else 0
        return {"record_type": "call", "call_control_id": call.call_control_id, "call_leg_id": call.call_leg_id,
                "call_session_id": call.call_session_id, "client_state": call.client_state,
                "is_alive": call.is_alive, "call_duration": duration, "start_time": _iso(call.created_at),
                "end_time": _iso(call.ended_at)}

    async def close(self) -> None:
        for call in self.calls.values():
            if call.stream is not None:
                await call.stream.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
