"""Hostile clients at the HTTP edge: slow bodies, clients that vanish mid-body.

These talk raw HTTP to a real listener (an ``AppRunner`` on an ephemeral port): the
failures they guard against live in how aiohttp's server handles the socket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from control_plane.app import CONTROL_PLANE_KEY, app_runner, create_app
from control_plane.auth import issue_api_key

from .conftest import make_settings

WAIT_S = 10.0  # a guard against hanging, never a measured expectation


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[tuple[int, asyncio.Queue[asyncio.Event]]]:
    """Serve ``app`` on 127.0.0.1; yields its port and a queue that receives, as each request
    reaches the app, an event set once the app is done with it."""
    requests: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    @web.middleware
    async def note_finished(request: web.Request, handler):  # type: ignore[no-untyped-def]
        done = asyncio.Event()
        requests.put_nowait(done)
        try:
            return await handler(request)
        finally:
            done.set()

    app.middlewares.insert(0, note_finished)
    runner = app_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, requests
    finally:
        await runner.cleanup()


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP response: its status line and its body (by Content-Length)."""
    status = await reader.readline()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return status, await reader.readexactly(length)


def _partial_post(path: str, declared: int, sent: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode() + sent


async def test_a_body_that_does_not_arrive_in_time_gets_408(tmp_path):
    # Fails before the change: nothing bounded the body read, the request stayed open.
    settings = make_settings(tmp_path, server={"body_timeout_s": 0.2})
    app = create_app(settings)
    async with serving(app) as (port, _):
        repo = await app[CONTROL_PLANE_KEY].repository()
        org = await repo.create_organisation("Slow")
        _, secret = await issue_api_key(repo, org.id, "test")
        for path, auth in (("/webhook/telnyx", ""), ("/api/calls/start", f"Authorization: Bearer {secret}\r\n")):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write((f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{auth}"
                          "Content-Length: 500\r\n\r\n{\"to\": ").encode())
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), WAIT_S)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
            writer.close()
            assert status.startswith(b"HTTP/1.1 408"), (path, status)
            assert b"connection: close" in head.lower()


async def test_a_client_that_disconnects_mid_body_is_one_debug_line(tmp_path, caplog):
    # Fails before the change: each disconnect logged an ERROR with a ~19-line traceback.
    caplog.set_level(logging.DEBUG)
    async with serving(create_app(make_settings(tmp_path))) as (port, requests):
        for _ in range(3):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_partial_post("/webhook/telnyx", 1000, b'{"data": {"id": "'))
            await writer.drain()
            done = await asyncio.wait_for(requests.get(), WAIT_S)  # the app is reading the body
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(done.wait(), WAIT_S)
    # (The start-up notice that local mode accepts streams without a credential is not about this.)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "control_plane.services"]
    assert errors == [], [r.getMessage() for r in errors]
    gone = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(gone) == 3 and all(r.levelno == logging.DEBUG and r.exc_info is None for r in gone)


@pytest.mark.slow
async def test_a_streamed_upload_has_the_deadline_per_chunk_not_in_total(tmp_path):
    settings = make_settings(tmp_path, server={"body_timeout_s": 0.5}, campaigns={"dialer": False})
    app = create_app(settings)
    async with serving(app) as (port, _):
        repo = await app[CONTROL_PLANE_KEY].repository()
        org = await repo.create_organisation("Uploads")
        _, secret = await issue_api_key(repo, org.id, "test")
        auth = f"Authorization: Bearer {secret}\r\n"

        async def post(path: str, body: bytes, content_type: str, pieces: int, pause_s: float,
                       stall: bool = False) -> tuple[bytes, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write((f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n{auth}"
                          f"Content-Length: {len(body) + (1 if stall else 0)}\r\n\r\n").encode())
            step = -(-len(body) // pieces)
            for i in range(0, len(body), step):
                writer.write(body[i:i + step])
                await writer.drain()
                await asyncio.sleep(pause_s)  # a slow client on a real socket: the server's deadline is real time
            status, body = await asyncio.wait_for(_response(reader), WAIT_S)
            writer.close()
            return status, body

        import orjson

        campaign = orjson.dumps({"name": "c", "caller_numbers": ["+14155550100"],
                                 "agent_config": {"personality": "friendly"}})
        status, body = await post("/api/campaigns", campaign, "application/json", 1, 0)
        assert status.startswith(b"HTTP/1.1 201"), body
        campaign_id = orjson.loads(body)["id"]
        csv = "".join(f"+1415555{i:04d}\n" for i in range(200)).encode()
        path = f"/api/campaigns/{campaign_id}/contacts"
        # Steady: every piece well within the deadline, the whole longer than it.
        status, body = await post(path, csv, "text/csv", 15, 0.05)
        assert status.split()[1] in (b"200", b"201"), (status, body)
        assert orjson.loads(body)["accepted"] == 200
        # Stalled: the last byte never comes.
        status, _ = await post(path, csv, "text/csv", 2, 0, stall=True)
        assert status.startswith(b"HTTP/1.1 408"), status
