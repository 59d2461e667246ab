"""The emulator's REST side: Telnyx's Call Control subset, plus test controls.

``/v2`` answers like Telnyx: Bearer auth (401, ``10009``), ``{"data": ...}`` on success,
``{"errors": [...]}`` otherwise; ``command_id`` de-duplicated for 60 s per call (per
account for dials): a duplicate gets the first response and does nothing, even while
the first is still in flight. Test controls: :class:`Faults` (500s or slow responses
for the next N requests) and an optional fixed-window rate limit (429 + headers).

``/_emulator`` is the out-of-process control surface (incoming calls, number behaviour,
key presses, the dial log), for when the emulator runs as ``python -m bench.telnyx_emulator``.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control_plane.telnyx.webhooks import public_key_b64

from .calls import (
    ACTIONS,
    ApiProblem,
    CallInfo,
    DialLogEntry,
    EventFields,
    NumberBehaviour,
    Switchboard,
    check_client_state,
    check_request,
    missing,
)
from .media import CalleeFactory, Impairment
from .webhooks import DeliverySwitches, WebhookDispatcher

__all__ = ["Faults", "RateLimit", "RequestRecord", "RunningEmulator", "start_emulator"]

Reply = tuple[int, dict[str, Any]]
_BODY = web.RequestKey("json_body", dict)


def _json(status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(document), content_type="application/json",
                        headers=headers)


def _problem(problem: ApiProblem, headers: dict[str, str] | None = None) -> web.Response:
    return _json(problem.status, problem.body(), headers)


# -- test controls ---------------------------------------------------------------------------


@dataclass
class _Fault:
    kind: str
    remaining: int
    status: int
    delay_s: float
    match: str | None


class Faults:
    """Injected failures for the next N matching ``/v2`` requests. A ``fail`` answers
    without running the command; a ``slow`` runs it, then holds the response back."""

    def __init__(self) -> None:
        self._queue: list[_Fault] = []

    def fail_next(self, n: int = 1, *, status: int = 500, match: str | None = None) -> None:
        self._queue.append(_Fault("fail", n, status, 0.0, match))

    def slow_next(self, n: int = 1, *, delay_s: float = 1.0, match: str | None = None) -> None:
        self._queue.append(_Fault("slow", n, 200, delay_s, match))

    def clear(self) -> None:
        self._queue.clear()

    def take(self, path: str) -> _Fault | None:
        for fault in self._queue:
            if fault.match is None or fault.match in path:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._queue.remove(fault)
                return fault
        return None


@dataclass
class RateLimit:
    """Fixed window: ``limit`` requests per ``window_s``."""

    limit: int
    window_s: float = 1.0
    _start: float = 0.0
    _count: int = 0

    def take(self, now: float) -> tuple[bool, dict[str, str]]:
        if now - self._start >= self.window_s:
            self._start, self._count = now, 0
        self._count += 1
        allowed = self._count <= self.limit
        reset = max(1, math.ceil(self._start + self.window_s - now))
        return allowed, {"x-ratelimit-limit": str(self.limit),
                         "x-ratelimit-remaining": str(max(0, self.limit - self._count)),
                         "x-ratelimit-reset": str(reset)}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    command_id: str | None
    status: int
    at: float
    body: dict[str, Any] | None = None
    """The request's JSON body as received (for tests inspecting what was sent)."""


class _Dedupe:
    """command_id idempotency. In-flight duplicates wait for the first and share its
    reply; only successes are remembered (a failed command may be sent again)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._entries: dict[tuple[str, str], tuple[float, asyncio.Future[Reply | None]]] = {}
        self.duplicates = 0

    async def run(self, key: tuple[str, str], execute: Callable[[], Awaitable[Reply]]) -> Reply:
        now = time.monotonic()
        while self._entries:  # insertion order is expiry order: drop from the front
            oldest = next(iter(self._entries))
            if self._entries[oldest][0] >= now:
                break
            del self._entries[oldest]
        entry = self._entries.get(key)
        if entry is not None:
            earlier = await asyncio.shield(entry[1])
            if earlier is not None:
                self.duplicates += 1
                return earlier
        future: asyncio.Future[Reply | None] = asyncio.get_running_loop().create_future()
        self._entries[key] = (now + self.window_s, future)
        reply: Reply | None = None
        try:
            reply = await execute()
            return reply
        finally:
            ok = reply is not None and reply[0] == 200
            future.set_result(reply if ok else None)
            if not ok and self._entries.get(key, (0, None))[1] is future:
                del self._entries[key]


# -- the application --------------------------------------------------------------------------


@dataclass(eq=False)
class RunningEmulator:
    """A live emulator: use ``base_url`` as the client's ``base_url``."""

    api_key: str
    private_key: Ed25519PrivateKey
    board: Switchboard
    hooks: WebhookDispatcher
    session: aiohttp.ClientSession
    command_window_s: float = 60.0
    faults: Faults = field(default_factory=Faults)
    rate_limit: RateLimit | None = None
    url: str = ""
    requests: list[RequestRecord] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self.public_key_b64 = public_key_b64(self.private_key)
        self._dedupe = _Dedupe(self.command_window_s)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v2"

    @property
    def dial_log(self) -> list[DialLogEntry]:
        return self.board.dial_log

    def dialled_more_than_once(self) -> dict[str, int]:
        """Numbers with more than one accepted dial (a campaign must keep this empty)."""
        counts: dict[str, int] = {}
        for entry in self.board.dial_log:
            counts[entry.to] = counts.get(entry.to, 0) + 1
        return {number: n for number, n in counts.items() if n > 1}

    @property
    def calls(self) -> dict[str, CallInfo]:
        return self.board.calls

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every webhook event emitted (``data`` objects), delivered or not."""
        return self.hooks.events

    @property
    def switches(self) -> DeliverySwitches:
        return self.hooks.switches

    def set_number_behaviour(self, number: str, behaviour: str | NumberBehaviour) -> None:
        if isinstance(behaviour, str):
            behaviour = NumberBehaviour(answer=behaviour)  # type: ignore[arg-type]
        self.board.behaviours[number] = behaviour

    def set_rate_limit(self, limit: int | None, window_s: float = 1.0) -> None:
        self.rate_limit = None if limit is None else RateLimit(limit, window_s)

    def incoming_call(self, *, from_: str, to: str, connection_id: str, webhook_url: str | None = None,
                      client_state: str | None = None) -> CallInfo:
        """Place a call to the app: ``call.initiated`` (incoming), then wait for ``answer``."""
        return self.board.incoming(from_=from_, to=to, connection_id=connection_id, webhook_url=webhook_url,
                                   client_state=client_state)

    async def press(self, call_control_id: str, digits: str, interval_s: float = 0.1) -> None:
        await self.board.calls[call_control_id].press(digits, interval_s)

    def remote_hangup(self, call_control_id: str) -> bool:
        return self.board.calls[call_control_id].hang_up()

    def events_for(self, call_control_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        """Events of one call; matched by its leg id too, since some payloads (e.g.
        ``call.recording.saved``) carry no ``call_control_id``."""
        call = self.board.calls.get(call_control_id)
        leg = call.call_leg_id if call is not None else None
        return [e for e in self.hooks.events
                if (e["payload"].get("call_control_id") == call_control_id
                    or (leg is not None and e["payload"].get("call_leg_id") == leg))
                and (event_type is None or e["event_type"] == event_type)]

    async def close(self) -> None:
        await self.board.close()
        await self.hooks.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.session.close()

    async def __aenter__(self) -> RunningEmulator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- /v2 --------------------------------------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if not request.path.startswith("/v2/"):
            return await handler(request)
        offered = request.headers.get("Authorization", "")
        if not hmac.compare_digest(offered.encode(), f"Bearer {self.api_key}".encode()):
            return self._log(request, None, _problem(ApiProblem(
                401, "10009", "Authentication failed",
                "The required authentication headers were either invalid or not included in the request.")))
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                parsed = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                return self._log(request, None, _problem(ApiProblem(400, "10015", "Bad Request",
                                                                    "The request body is not a JSON object.")))
            body = parsed
        request[_BODY] = body
        command_id = body.get("command_id") if isinstance(body.get("command_id"), str) else None
        limit_headers: dict[str, str] = {}
        if self.rate_limit is not None:
            allowed, limit_headers = self.rate_limit.take(time.monotonic())
            if not allowed:
                headers = {**limit_headers, "Retry-After": limit_headers["x-ratelimit-reset"]}
                return self._log(request, command_id, _problem(ApiProblem(
                    429, "10011", "Too many requests", "You have exceeded the maximum number of allowed requests."),
                    headers))
        fault = self.faults.take(request.path)
        if fault is not None and fault.kind == "fail":
            return self._log(request, command_id, _problem(ApiProblem(
                fault.status, "10007", "Unexpected error", "An unexpected error occured.")))
        response = await handler(request)
        response.headers.update(limit_headers)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
        return self._log(request, command_id, response)

    def _log(self, request: web.Request, command_id: str | None, response: web.StreamResponse) -> web.StreamResponse:
        body = request.get(_BODY)
        self.requests.append(RequestRecord(request.method, request.path, command_id, response.status, time.time(),
                                           body if isinstance(body, dict) else None))
        return response

    async def _idempotent(self, key: tuple[str, str] | None, execute: Callable[[], Awaitable[Reply]]) -> web.Response:
        status, document = await (self._dedupe.run(key, execute) if key else execute())
        return _json(status, document)

    async def _dial(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = request[_BODY]
        command_id = body.get("command_id")

        async def execute() -> Reply:
            try:
                check_request("dial", body, unknown_keys=self.board.unknown_keys)
                if not isinstance(body["to"], (str, list)) or not isinstance(body["from"], str):
                    raise ApiProblem(422, "10015", "Bad Request", "'to' and 'from' must be strings.")
                check_client_state(body.get("client_state"))
                timeout = body.get("timeout_secs")
                if timeout is not None and (not isinstance(timeout, int) or timeout < 1):
                    raise ApiProblem(422, "10015", "Bad Request", "timeout_secs must be a positive integer.",
                                     "/timeout_secs")
            except ApiProblem as problem:
                return problem.status, problem.body()
            call = self.board.dial(body)
            data = {"call_control_id": call.call_control_id, "call_leg_id": call.call_leg_id,
                    "call_session_id": call.call_session_id, "is_alive": False, "record_type": "call"}
            if call.client_state is not None:
                data["client_state"] = call.client_state
            return 200, {"data": data}

        return await self._idempotent(("dial", command_id) if isinstance(command_id, str) else None, execute)

    def _call(self, request: web.Request) -> CallInfo:
        call = self.board.calls.get(request.match_info["call_control_id"])
        if call is None:
            raise ApiProblem(404, "90015", "Invalid Call Control ID",
                             "The call_control_id provided was not valid.")
        return call

    async def _get_call(self, request: web.Request) -> web.Response:
        try:
            return _json(200, {"data": self.board.status(self._call(request))})
        except ApiProblem as problem:
            return _problem(problem)

    async def _action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        try:
            if action not in ACTIONS:
                raise ApiProblem(404, "10005", "Resource not found",
                                 "The requested resource or URL could not be found.")
            call = self._call(request)
        except ApiProblem as problem:
            return _problem(problem)
        body: dict[str, Any] = request[_BODY]
        command_id = body.get("command_id")

        async def execute() -> Reply:
            try:
                return 200, {"data": self.board.act(call, action, body)}
            except ApiProblem as problem:
                return problem.status, problem.body()

        key = (call.call_control_id, command_id) if isinstance(command_id, str) else None
        return await self._idempotent(key, execute)

    # -- /_emulator -------------------------------------------------------------------------------

    async def _incoming(self, request: web.Request) -> web.Response:
        body = await request.json()
        for name in ("from", "to"):
            if not body.get(name):
                return _problem(missing(name))
        call = self.incoming_call(from_=body["from"], to=body["to"], connection_id=str(body.get("connection_id", "")),
                                  webhook_url=body.get("webhook_url"), client_state=body.get("client_state"))
        return _json(200, {"data": {"call_control_id": call.call_control_id, "call_leg_id": call.call_leg_id,
                                    "call_session_id": call.call_session_id}})

    async def _number(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            behaviour = NumberBehaviour(**body)
        except TypeError as exc:
            return _json(422, {"errors": [{"code": "10015", "title": "Bad Request", "detail": str(exc)}]})
        self.set_number_behaviour(request.match_info["number"], behaviour)
        return _json(200, {"data": {"result": "ok"}})

    async def _press(self, request: web.Request) -> web.Response:
        body = await request.json()
        call = self.board.calls.get(request.match_info["call_control_id"])
        if call is None:
            return _json(404, {"errors": [{"code": "90015", "title": "Invalid Call Control ID"}]})
        self.board.spawn(call.press(str(body.get("digits", "")), float(body.get("interval_s", 0.1))), call)
        return _json(200, {"data": {"result": "ok"}})

    async def _remote_hangup(self, request: web.Request) -> web.Response:
        call = self.board.calls.get(request.match_info["call_control_id"])
        if call is None:
            return _json(404, {"errors": [{"code": "90015", "title": "Invalid Call Control ID"}]})
        return _json(200, {"data": {"result": "ok" if call.hang_up() else "already_ended"}})

    async def _dial_log(self, request: web.Request) -> web.Response:
        return _json(200, {"data": [{"to": e.to, "from": e.from_, "command_id": e.command_id,
                                     "connection_id": e.connection_id, "call_control_id": e.call_control_id,
                                     "at": e.at} for e in self.dial_log]})

    async def _events(self, request: web.Request) -> web.Response:
        return _json(200, {"data": self.hooks.events})

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate], client_max_size=1 << 20)
        app.router.add_post("/v2/calls", self._dial)
        app.router.add_get("/v2/calls/{call_control_id}", self._get_call)
        app.router.add_post("/v2/calls/{call_control_id}/actions/{action}", self._action)
        app.router.add_post("/_emulator/incoming", self._incoming)
        app.router.add_put("/_emulator/numbers/{number}", self._number)
        app.router.add_post("/_emulator/calls/{call_control_id}/dtmf", self._press)
        app.router.add_post("/_emulator/calls/{call_control_id}/hangup", self._remote_hangup)
        app.router.add_get("/_emulator/dial_log", self._dial_log)
        app.router.add_get("/_emulator/events", self._events)
        return app


async def start_emulator(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str = "emulator-key",
    webhook_url: str | None = None,
    callee_factory: CalleeFactory | None = None,
    time_scale: float = 1.0,
    default_behaviour: NumberBehaviour | None = None,
    impairment: Impairment | None = None,
    switches: DeliverySwitches | None = None,
    command_window_s: float = 60.0,
    incoming_timeout_s: float = 30.0,
    private_key: Ed25519PrivateKey | None = None,
    event_fields: EventFields = "sdk",
    unknown_keys: bool = False,
) -> RunningEmulator:
    """Start a local Telnyx on ``host:port`` (0: any free port) inside this event loop.

    ``event_fields="docs"`` adds to webhooks the fields Telnyx's docs show but its SDK lacks;
    ``unknown_keys=True`` accepts request keys the SDK does not define (else a 422)."""
    private_key = private_key or Ed25519PrivateKey.generate()
    # No pool limit: aiohttp's default of 100 connections, shared by the media streams (each
    # holds one for the whole call) and the webhook POSTs, queued every webhook behind the
    # 101st stream until its 2 s attempt timed out. Telnyx has no such shared cap.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    hooks = WebhookDispatcher(private_key, session, default_url=webhook_url, switches=switches or DeliverySwitches())
    board = Switchboard(hooks=hooks, session=session, callee_factory=callee_factory, time_scale=time_scale,
                        impairment=impairment, default_behaviour=default_behaviour,
                        incoming_timeout_s=incoming_timeout_s, event_fields=event_fields,
                        unknown_keys=unknown_keys)
    emulator = RunningEmulator(api_key=api_key, private_key=private_key, board=board, hooks=hooks, session=session,
                               command_window_s=command_window_s)
    runner = web.AppRunner(emulator.build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
    emulator._runner = runner
    emulator.url = f"http://{host}:{bound[1]}"
    return emulator
