"""The aiohttp edge over real sockets: auth, a turn and a barge-in, metrics, and no leaks."""

import asyncio
import collections
import gc
import logging
import weakref

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from bench.signals import silence, voiced
from control_plane.app import METRICS_KEY, create_app
from control_plane.settings import Settings
from engine.endpointing import EndpointEvent
from engine.session import MediaListener
from tests.engine.helpers import media_frames, start_frame
from tests.fixtures.waiting import eventually


class ReplyOnTurnEnd(MediaListener):
    """Answers every finished caller turn with 2 s of agent audio."""

    def on_start(self, session, start):
        self.session = session
        self.replies = 0

    def on_endpoint(self, event, now):
        if event is EndpointEvent.TURN_END:
            self.replies += 1
            self.session.speak(self.replies, voiced(2.0, seed=self.replies))
            self.session.finish_utterance(self.replies)


async def serve(settings=None, listener_factory=None):
    app = create_app(settings or Settings(), listener_factory=listener_factory)
    server = TestServer(app)
    await server.start_server()
    return server


async def collect(ws, until, timeout=5.0):
    """Read frames from the engine until ``until(frame)`` is true."""
    got = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            frame = orjson.loads(msg.data)
            got.append(frame)
            if until(frame):
                return got


async def test_turn_reply_and_barge_in_over_a_real_socket():
    server = await serve(listener_factory=lambda request: ReplyOnTurnEnd())
    try:
        async with aiohttp.ClientSession() as client, \
                client.ws_connect(server.make_url("/media-stream?call=1")) as ws:
            await ws.send_str('{"event":"connected","version":"1.0.0"}')
            await ws.send_bytes(start_frame())
            frames = media_frames(voiced(0.6) + silence(0.5))
            for msg in frames:
                await ws.send_bytes(msg)
            first = await collect(ws, lambda f: f["event"] == "media")
            assert first[-1]["media"]["payload"]
            # barge in: the caller talks over the agent's 2 s reply
            for msg in media_frames(voiced(0.5, seed=9), first_chunk=len(frames) + 1):
                await ws.send_bytes(msg)
                await asyncio.sleep(0.005)  # a real socket: frames spread out as a caller's would be
            got = await collect(ws, lambda f: f["event"] == "clear")
            media_before_clear = sum(f["event"] == "media" for f in got) + 1
            assert media_before_clear < 100  # far less than the 2 s reply
        metrics = server.app[METRICS_KEY]
        await eventually(lambda: not metrics.sessions.live, what="the session to end")
        totals = metrics.sessions.totals()
        assert totals["barge_ins"] == 1 and totals["frames_in"] == len(frames) + 25
    finally:
        await server.close()


async def test_metrics_endpoint_exports_engine_counters_and_turn_histograms():
    server = await serve(listener_factory=lambda request: ReplyOnTurnEnd())
    kept = server.app[METRICS_KEY].recent_turns = collections.deque(maxlen=10)  # as the bench keeps them
    try:
        async with aiohttp.ClientSession() as client, client.ws_connect(server.make_url("/media-stream")) as ws:
            await ws.send_bytes(start_frame())
            for msg in media_frames(voiced(0.6) + silence(0.5)):
                await ws.send_bytes(msg)
            await ws.send_str("garbage")
            await collect(ws, lambda f: f["event"] == "media")
            body = await (await client.get(server.make_url("/metrics"))).text()
    finally:
        await server.close()
    assert "callagent_frames_in_total 55.0" in body
    assert "callagent_malformed_frames_total 1.0" in body
    assert "callagent_active_streams 1.0" in body
    assert "callagent_turn_latency_seconds_count 1.0" in body
    assert 'callagent_turn_stage_seconds_count{stage="endpointing"} 1.0' in body
    assert [t["stream_id"] for t in kept] == ["stream-1"]  # the bench tells calls' turns apart by it


async def test_stream_auth_token_is_enforced():
    server = await serve(Settings(stream_auth_token="s3cret"))
    try:
        async with aiohttp.ClientSession() as client:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await client.ws_connect(server.make_url("/media-stream"))
            assert info.value.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await client.ws_connect(server.make_url("/media-stream"),
                                        headers={"x-telnyx-streaming-auth-token": "wrong"})
            ws = await client.ws_connect(server.make_url("/media-stream"),
                                         headers={"x-telnyx-streaming-auth-token": "s3cret"})
            await ws.close()
    finally:
        await server.close()


@pytest.mark.slow
async def test_a_thousand_dropped_sockets_leak_nothing(caplog):
    sessions = weakref.WeakSet()
    started = []

    class Tracked(ReplyOnTurnEnd):
        def on_start(self, session, start):
            super().on_start(session, start)
            sessions.add(session)
            started.append(start.call_control_id)

    async def one(client, url, i):
        ws = await client.ws_connect(url)
        await ws.send_bytes(start_frame(call_control_id=f"v3:{i}"))
        for msg in media_frames(voiced(0.7, seed=i % 7) + silence(0.4)):  # a turn, so a reply is queued
            await ws.send_bytes(msg)
        if i % 2:
            await ws.close()  # clean close
        else:
            ws._response.connection.transport.abort()  # the carrier vanishes mid-call
            ws._response.close()

    server = await serve(listener_factory=lambda request: Tracked())
    url = server.make_url("/media-stream")
    metrics = server.app[METRICS_KEY]
    try:
        async with aiohttp.ClientSession() as client:
            await asyncio.gather(*(one(client, url, i) for i in range(20)))  # warm-up
            tasks_before = await _settle(metrics, baseline=None)
            gc.collect()
            objects_before = len(gc.get_objects())
            for start in range(0, 1000, 100):
                await asyncio.gather(*(one(client, url, i) for i in range(start, start + 100)))
            assert metrics.sessions.sessions_total == 1020
            tasks_after = await _settle(metrics, baseline=tasks_before)
            gc.collect()
            objects_after = len(gc.get_objects())
            assert tasks_after <= tasks_before
            assert not metrics.sessions.live
            assert len(started) == 1020
            assert len(sessions) == 0, f"{len(sessions)} sessions still referenced"
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
            # 1000 calls each held a jitter buffer, VAD, playout and a queued 2 s reply;
            # a leak of even one object per call would show here.
            assert objects_after - objects_before < 500, objects_after - objects_before
    finally:
        await server.close()


async def _settle(metrics, baseline, timeout=10.0):
    """Wait until every session has ended and the task count is back to ``baseline``."""
    async with asyncio.timeout(timeout):
        while True:
            tasks = len(asyncio.all_tasks())
            if not metrics.sessions.live and (baseline is None or tasks <= baseline):
                await asyncio.sleep(0.05)  # let aiohttp finish closing handlers
                return len(asyncio.all_tasks())
            await asyncio.sleep(0.02)  # polling the server's task count (no hook to wait on)


class Stops(MediaListener):
    """Records whether the call's media ended (the session told its listener)."""

    def __init__(self):
        self.started = self.stopped = False

    def on_start(self, session, start):
        self.started = True

    def on_stop(self, now):
        self.stopped = True


async def test_a_socket_that_never_sends_start_is_closed(caplog):
    # Fails before the change: such a socket stayed open (still open after 90 s in the probe).
    caplog.set_level(logging.DEBUG)
    listeners = []

    def factory(request):
        listeners.append(Stops())
        return listeners[-1]

    server = await serve(Settings(engine={"stream_start_timeout_s": 0.2}), listener_factory=factory)
    try:
        async with aiohttp.ClientSession() as client, client.ws_connect(server.make_url("/media-stream")) as ws:
            await ws.send_str('{"event":"connected","version":"1.0.0"}')
            await ws.send_str("junk keeps no socket alive")
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type is aiohttp.WSMsgType.CLOSE, msg
            assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        metrics = server.app[METRICS_KEY]
        await _settle(metrics, baseline=None)
        assert not metrics.sessions.live
    finally:
        await server.close()

    assert listeners and not listeners[0].started
    closed = [r for r in caplog.records if "no start frame" in r.getMessage()]
    assert len(closed) == 1 and closed[0].levelno == logging.DEBUG


@pytest.mark.slow
async def test_an_idle_stream_is_closed_and_its_media_ends():
    # Fails before the change: a started stream that went quiet was never closed.
    listener = Stops()

    settings = Settings(engine={"stream_start_timeout_s": 0.2, "stream_idle_timeout_s": 0.5})
    server = await serve(settings, listener_factory=lambda request: listener)
    try:
        async with aiohttp.ClientSession() as client, client.ws_connect(server.make_url("/media-stream")) as ws:
            await ws.send_bytes(start_frame())
            # Frames keep it alive well past both timeouts...
            for msg in media_frames(silence(1.2)):
                await ws.send_bytes(msg)
                await asyncio.sleep(0.02)  # a real socket, real time: the idle timeout is the server's clock
                assert not ws.closed and not listener.stopped
            # ...and silence from the peer ends it.
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type is aiohttp.WSMsgType.CLOSE, msg
            assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        await _settle(server.app[METRICS_KEY], baseline=None)
    finally:
        await server.close()

    assert listener.started and listener.stopped
