"""What the three emulators share on the HTTP side: bearer-key checks and the `disconnect` fault."""

from __future__ import annotations

import hmac

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
