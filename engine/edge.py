"""The IO edge: one aiohttp WebSocket per call, feeding a sans-IO :class:`MediaSession`.

Each socket gets its handler task (reads frames, feeds the session) and one sender
task (sleeps until the session's next deadline, ticks it, writes what is due).
Keeping the writer per socket means a slow carrier connection back-pressures only
its own call. A :class:`_Watchdog` closes a socket that never sends ``start`` or goes
quiet. Nothing here logs per frame or blocks the loop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web

from .config import EngineConfig
from .metrics import EngineMetrics
from .session import MediaListener, MediaSession

log = logging.getLogger(__name__)

AUTH_HEADER = "x-telnyx-streaming-auth-token"
MAX_MESSAGE_BYTES = 1 << 20

_END_OF_STREAM = frozenset((WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR))
"""What ends the reader's loop (``async for`` over the socket stops on the first three)."""

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


class _Watchdog:
    """Closes a socket that sends no ``start`` within ``start_s`` of opening, or, once
    started, no message for ``idle_s``.

    The reader only stores the time of each message in :attr:`last_message_at`; the one
    timer is re-armed when it fires (at most once per timeout), never per frame."""

    __slots__ = ("_loop", "_ws", "_session", "_start_s", "_idle_s", "_opened_at", "last_message_at",
                 "_timer", "closing", "reason")

    def __init__(self, loop: asyncio.AbstractEventLoop, ws: web.WebSocketResponse, session: MediaSession,
                 start_s: float, idle_s: float) -> None:
        self._loop = loop
        self._ws = ws
        self._session = session
        self._start_s = start_s
        self._idle_s = idle_s
        self._opened_at = self.last_message_at = loop.time()
        self._timer: asyncio.TimerHandle | None = loop.call_at(self._opened_at + start_s, self._check)
        self.closing: asyncio.Task[bool] | None = None
        self.reason: str | None = None
        """Why the watchdog closed the socket (None: it did not)."""

    def _check(self) -> None:
        now = self._loop.time()
        if self._session.started:
            deadline, reason = self.last_message_at + self._idle_s, f"no media for {self._idle_s:g} s"
        else:
            deadline, reason = self._opened_at + self._start_s, f"no start frame within {self._start_s:g} s"
        if now < deadline:
            self._timer = self._loop.call_at(deadline, self._check)
            return
        self._timer = None
        self.reason = reason
        # Closing from here ends the reader's loop; the handler then ends the session.
        self.closing = self._loop.create_task(self._ws.close(code=WSCloseCode.POLICY_VIOLATION,
                                                             message=reason.encode()))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


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
        self._sockets: dict[MediaSession, web.WebSocketResponse] = {}
        self._none_open = asyncio.Event()
        self._none_open.set()

    # -- what a shutdown needs -----------------------------------------------------------

    @property
    def sessions(self) -> list[MediaSession]:
        """The sessions whose sockets are open now (``call_control_id`` once started)."""
        return list(self._sockets)

    async def wait_all_closed(self) -> None:
        """Return once no media socket is open (each call ended, or was closed)."""
        while self._sockets:
            await self._none_open.wait()

    async def close_all(self, code: int, message: bytes) -> int:
        """Close every open media socket with ``code``; their sessions end as on any close.
        Returns how many were open."""
        sockets = list(self._sockets.values())
        await asyncio.gather(*(ws.close(code=code, message=message) for ws in sockets), return_exceptions=True)
        return len(sockets)

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
        session = MediaSession(self.config, self.listener_factory(request))
        observe = self.metrics.observe_turn
        session.observer = lambda turn: observe(turn, session.stream_id)  # the bench's turns, by call
        waker = _Waker(loop)
        session.waker = waker.wake
        self.metrics.sessions.add(session)
        self._sockets[session] = ws
        self._none_open.clear()
        sender = loop.create_task(self._send_loop(ws, session, waker))
        config = self.config
        watchdog = _Watchdog(loop, ws, session, config.stream_start_timeout_s, config.stream_idle_timeout_s)
        receive = session.receive
        next_message = ws.receive  # (not `async for`: one coroutine less per frame)
        failed = False
        try:
            while True:
                msg = await next_message()
                kind = msg.type
                if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                    now = watchdog.last_message_at = loop.time()
                    try:
                        receive(msg.data, now)
                    except Exception:
                        # A bug in a stage must not end the call or spam the log.
                        session.stats.malformed += 1
                        if not failed:
                            failed = True
                            log.exception("media session %s failed on a frame; dropping it", session.stream_id)
                elif kind in _END_OF_STREAM:
                    break
        finally:
            watchdog.cancel()
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, Exception):
                pass
            try:
                if watchdog.reason is not None:
                    # One line per socket at most; a stream that never started may be anyone's.
                    log.log(logging.INFO if session.started else logging.DEBUG, "media stream %s closed: %s",
                            session.stream_id, watchdog.reason)
                session.close(loop.time())
                self.metrics.sessions.remove(session)
                self.metrics.stream_ended(session.timelines.recent, session.stream_id)
                if watchdog.closing is not None:
                    await asyncio.gather(watchdog.closing, return_exceptions=True)
                elif not ws.closed:
                    await ws.close()
            finally:
                del self._sockets[session]
                if not self._sockets:
                    self._none_open.set()
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
