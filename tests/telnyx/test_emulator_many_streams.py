"""The Telnyx emulator carries more than 100 live media streams and still delivers webhooks.

Its media streams and webhook deliveries shared one aiohttp session with the default pool of
100 connections. Past 100 open streams every webhook POST (and every new stream) queued for a
connection, its 2 s attempt timed out in the queue, and after 4 attempts it was given up: the
bench's engine at 150-400 concurrent calls never heard of answers, stream starts and hangups
it had in fact been quick to acknowledge. Telnyx's streams and webhooks share no such pool."""

from __future__ import annotations

import aiohttp
import pytest

from .helpers import CONNECTION_ID, FROM, MediaServer, world

STREAMS = 120


class _Listener:
    """A callee that keeps its stream open and says nothing, until the app closes it."""

    async def run(self, ws: aiohttp.ClientWebSocketResponse, call: object) -> None:
        async for _ in ws:
            pass


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_webhooks_still_arrive_with_more_than_a_hundred_streams_open() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world(callee_factory=lambda call: _Listener()) as (_emulator, sink, client):
            for i in range(STREAMS):
                await client.dial(connection_id=CONNECTION_ID, to=f"+1555020{i:04d}", from_=FROM,
                                  stream_url=media.url)
            started = await sink.wait_for("streaming.started", count=STREAMS, timeout=30)
            assert len({e.call_control_id for e in started}) == STREAMS
            assert len(media.sessions) == STREAMS
            assert not [d for d in _emulator.hooks.deliveries if d.status != 200]
    finally:
        await media.close()
