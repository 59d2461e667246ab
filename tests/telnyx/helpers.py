"""Test doubles on real sockets: the app's webhook endpoint and its media-stream server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from bench.telnyx_emulator import RunningEmulator, start_emulator
from control_plane.telnyx import TelnyxClient, WebhookEvent, parse_event, verify_signature

CONNECTION_ID = "1240401930086254526"
FROM = "+15550100001"
TO = "+15550100002"


async def _serve(app: web.Application, shutdown_timeout: float = 60.0) -> tuple[web.AppRunner, str]:
    """``app`` on a free local port: its runner (``cleanup()`` when done) and base URL. A handler
    still running at cleanup is waited for up to ``shutdown_timeout`` seconds."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    at: float  # the loop's clock (virtual on a virtual-time loop)
    event: WebhookEvent


class WebhookSink:
    """The app's webhook endpoint: records every request; can answer 500 to the first N."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.fail_first = 0
        self.status_for: Callable[[WebhookEvent], int] | None = None
        self._arrived = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks", self._handle)
        self.runner, base = await _serve(app)
        self.url = f"{base}/webhooks"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = parse_event(body)
        self.received.append(Received(body, dict(request.headers), asyncio.get_running_loop().time(), event))
        self._arrived.set()
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500)
        if self.status_for is not None:
            return web.Response(status=self.status_for(event))
        return web.Response(status=200)

    def events(self, event_type: str | None = None, call_control_id: str | None = None) -> list[WebhookEvent]:
        return [r.event for r in self.received
                if (event_type is None or r.event.event_type == event_type)
                and (call_control_id is None or r.event.call_control_id == call_control_id)]

    def types(self, call_control_id: str | None = None) -> list[str]:
        return [e.event_type for e in self.events(call_control_id=call_control_id)]

    async def wait_for(self, event_type: str, call_control_id: str | None = None, *, count: int = 1,
                       timeout: float = 5.0) -> list[WebhookEvent]:
        async def until() -> list[WebhookEvent]:
            while True:
                found = self.events(event_type, call_control_id)
                if len(found) >= count:
                    return found
                self._arrived.clear()
                await self._arrived.wait()
        return await asyncio.wait_for(until(), timeout)

    def verify_all(self, public_key_b64: str) -> None:
        for r in self.received:
            verify_signature(r.body, r.headers, public_key_b64)

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class StreamSession:
    """One media WebSocket the emulator opened to the test's server."""

    ws: web.WebSocketResponse
    headers: dict[str, str]
    request: web.Request | None = None
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [f for _, f in self.frames if f.get("event") == event]

    def timed(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, f) for t, f in self.frames if f.get("event") == event]

    async def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def until() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), timeout)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(frame).decode())


class MediaServer:
    """A tiny aiohttp WebSocket server standing in for the app's media endpoint."""

    def __init__(self, *, require_token: str | None = None) -> None:
        self.require_token = require_token
        self.sessions: list[StreamSession] = []
        self._new = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/media", self._handle)
        self.runner, base = await _serve(app)
        self.url = base.replace("http://", "ws://") + "/media"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        offered = request.headers.get("x-telnyx-streaming-auth-token")
        if self.require_token is not None and offered != self.require_token:
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = StreamSession(ws, dict(request.headers), request)
        self.sessions.append(session)
        self._new.set()
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                session.frames.append((asyncio.get_running_loop().time(), orjson.loads(message.data)))
                session.changed.set()
        session.closed.set()
        session.changed.set()
        return ws

    async def next_session(self, timeout: float = 5.0) -> StreamSession:
        async def until() -> StreamSession:
            while not self.sessions:
                self._new.clear()
                await self._new.wait()
            return self.sessions[0]
        return await asyncio.wait_for(until(), timeout)

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@contextlib.asynccontextmanager
async def world(**emulator_options: Any) -> AsyncIterator[tuple[RunningEmulator, WebhookSink, TelnyxClient]]:
    """Emulator + webhook sink + client, all on real sockets; fast call progress."""
    sink = WebhookSink()
    await sink.start()
    emulator_options.setdefault("time_scale", 0.05)
    emulator = await start_emulator(webhook_url=sink.url, **emulator_options)
    client = TelnyxClient(emulator.api_key, base_url=emulator.base_url)
    try:
        yield emulator, sink, client
    finally:
        await client.close()
        await emulator.close()
        await sink.close()
