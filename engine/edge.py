"""The IO edge: one aiohttp WebSocket per call, feeding a sans-IO :class:`MediaSession`.

Each socket gets its handler task (reads frames, feeds the session) and one sender
task (sleeps until the session's next deadline, ticks it, writes what is due).
Keeping the writer per socket means a slow carrier connection back-pressures only
its own call. Nothing here logs per frame or blocks the loop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Callable

from aiohttp import WSMsgType, web

from .config import EngineConfig
from .metrics import EngineMetrics
from .session import MediaListener, MediaSession

log = logging.getLogger(__name__)

AUTH_HEADER = "x-telnyx-streaming-auth-token"
MAX_MESSAGE_BYTES = 1 << 20

ListenerFactory = Callable[[web.Request], MediaListener]
Admission = Callable[[web.Request], bool]
"""Decides on the upgrade whether a stream may connect (False: 401); may annotate the request."""


def _default_listener(request: web.Request) -> MediaListener:
    return MediaListener()


class _Waker:
    """Sleep until a deadline or until woken, whichever comes first (no task per wake-up)."""

    __slots__ = ("_loop", "_future", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] | None = None
        self._pending = False

    def wake(self) -> None:
        future = self._future
        if future is None:
            self._pending = True  # woken while busy: do not sleep next time
        elif not future.done():
            future.set_result(None)

    async def sleep_until(self, deadline: float | None) -> None:
        if self._pending:
            self._pending = False
            return
        future = self._future = self._loop.create_future()
        timer = None if deadline is None else self._loop.call_at(deadline, _resolve, future)
        try:
            await future
        finally:
            self._future = None
            if timer is not None:
                timer.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class MediaStreamEndpoint:
    """``GET <media path>``: accept a Telnyx media stream and run its session."""

    def __init__(
        self,
        config: EngineConfig,
        metrics: EngineMetrics,
        listener_factory: ListenerFactory = _default_listener,
        auth_token: str | None = None,
        admit: Admission | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.listener_factory = listener_factory
        self._auth_token = auth_token.encode() if auth_token else None
        self._admit = admit

    def _authorized(self, request: web.Request) -> bool:
        if self._admit is not None:
            return self._admit(request)
        if self._auth_token is None:
            return True
        offered = request.headers.get(AUTH_HEADER, "").encode()
        return hmac.compare_digest(offered, self._auth_token)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            raise web.HTTPUnauthorized(text="media stream auth token missing or wrong")
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, autoping=True)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        session = MediaSession(self.config, self.listener_factory(request), self.metrics.observe_turn)
        waker = _Waker(loop)
        session.waker = waker.wake
        self.metrics.sessions.add(session)
        sender = loop.create_task(self._send_loop(ws, session, waker))
        receive = session.receive
        failed = False
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                    try:
                        receive(msg.data, loop.time())
                    except Exception:
                        # A bug in a stage must not end the call or spam the log.
                        session.stats.malformed += 1
                        if not failed:
                            failed = True
                            log.exception("media session %s failed on a frame; dropping it", session.stream_id)
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, Exception):
                pass
            session.close(loop.time())
            self.metrics.sessions.remove(session)
            if not ws.closed:
                await ws.close()
        return ws

    @staticmethod
    async def _send_loop(ws: web.WebSocketResponse, session: MediaSession, waker: _Waker) -> None:
        loop = asyncio.get_running_loop()
        outbound = session.outbound
        while not ws.closed:
            if session.ending:
                await ws.close()  # the listener refused the stream: the reader sees the close and ends
                return
            session.tick(loop.time())
            if outbound:
                frames = outbound[:]
                outbound.clear()
                try:
                    for frame in frames:
                        await ws.send_str(frame)
                except ConnectionError:
                    return  # the socket is going away; the reader will end the session
            await waker.sleep_until(session.next_wakeup(loop.time()))
