"""What the three emulators share on the HTTP side: bearer-key checks and the `disconnect` fault."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web


def bearer_ok(request: web.Request, api_key: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def drop_connection(request: web.Request) -> None:
    """Cut the TCP connection without a close frame or a final chunk (the `disconnect` fault)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def accept(ws: web.WebSocketResponse, request: web.Request) -> bool:
    """Send the handshake's answer; False when the client already went away (it gave up waiting):
    nobody to serve, and nothing worth a traceback. The handler then returns a plain response,
    which aiohttp drops quietly on the closed connection (the half-prepared socket it would not)."""
    try:
        await ws.prepare(request)
    except ConnectionResetError:
        return False
    return True


async def serve_duplex(ws: web.WebSocketResponse, read: Callable[[], Coroutine[Any, Any, None]],
                       write: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Read a streaming socket's client messages while one writer task sends results in order;
    however reading ends, stop the writer and close the socket."""
    writer = asyncio.get_running_loop().create_task(write())
    try:
        await read()
    finally:
        writer.cancel()
        try:
            await writer
        except asyncio.CancelledError:
            pass
        if not ws.closed:
            await ws.close()
