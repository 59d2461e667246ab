"""One error shape for every API failure: ``{"error": {"code", "message", "details"}}``.

Handlers raise :class:`ApiError`; :func:`error_middleware` turns it, aiohttp's own HTTP
errors (404 route, 405, 413 body too large) and anything unexpected (500, logged, no
internals leaked) into that shape. Request bodies are read by :func:`read_body` (within
a deadline: aiohttp has none, so a client could hold a handler open by sending its body
slowly) and validated by :func:`read_json` before a handler writes anything. A client
that disconnects before its body arrived is one DEBUG line, not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp.typedefs
from aiohttp import web
from aiohttp.http_exceptions import PayloadEncodingError
from pydantic import BaseModel, ValidationError

from .jsonutil import dumps, has_nul

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}


BODY_DEADLINE_KEY = web.AppKey("body_deadline_s", float)
"""Seconds a request's whole body may take to arrive (``server.body_timeout_s``)."""
DEFAULT_BODY_DEADLINE_S = 10.0


class ClientGone(Exception):
    """The client disconnected before its request body arrived: nobody is left to answer."""


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx response."""

    error: ErrorDetail


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = dumps({"error": {"code": code, "message": message, "details": details}})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def json_response(value: BaseModel | dict[str, Any] | list[Any], status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    body = value.model_dump_json(by_alias=True).encode() if isinstance(value, BaseModel) else dumps(value)
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


_LOC_NAME = re.compile(r"^[\w.\- \[\]]{1,64}$")


def _loc(part: str | int) -> str | int:
    """A location step, unless it is a dict key a client chose that could carry anything."""
    return part if isinstance(part, int) or _LOC_NAME.match(part) else "<key>"


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the submitted values (they may be personal data), doc URLs, or
    dict keys that are not plain names (a location includes the key of a bad dict entry)."""
    return [
        {"loc": [_loc(part) for part in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _is_json(content_type: str) -> bool:
    if content_type == "application/json":
        return True
    return content_type.startswith("application/") and content_type.endswith("+json")


async def read_json(request: web.Request, model: type[M]) -> M:
    """The request body as ``model``: 415 unless JSON, 413 when too large, 400 when malformed or invalid."""
    if not _is_json(request.content_type):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json",
                       {"content_type": request.content_type})
    raw = await read_body(request)
    if not raw.strip():
        raise ApiError(400, "invalid_json", "the request body is empty")
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        details = validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            raise ApiError(400, "invalid_json", "the request body is not valid JSON", details) from None
        raise ApiError(400, "validation_error", "the request body failed validation", details) from None
    if b"\\u0000" in raw and has_nul(parsed.model_dump()):
        raise ApiError(400, "validation_error", "strings must not contain NUL characters")
    return parsed


@contextlib.asynccontextmanager
async def _receiving(request: web.Request) -> AsyncIterator[None]:
    """Reading (part of) the body: 408 past the app's body deadline, 400 when its framing is
    broken, :class:`ClientGone` when the client disconnects."""
    deadline = request.app.get(BODY_DEADLINE_KEY, DEFAULT_BODY_DEADLINE_S)
    timeout = asyncio.timeout(deadline)
    try:
        async with timeout:
            yield
    except OSError:  # TimeoutError (ours, or the socket's) and ConnectionResetError are OSErrors
        if timeout.expired():
            raise ApiError(408, "request_timeout", f"the request body did not arrive within {deadline:g} s",
                           headers={"Connection": "close"}) from None
        raise ClientGone from None
    except PayloadEncodingError:
        raise ApiError(400, "invalid_body", "the request body's framing is broken",
                       headers={"Connection": "close"}) from None


async def read_body(request: web.Request) -> bytes:
    """The whole request body, which must arrive within the body deadline."""
    async with _receiving(request):
        return await request.read()


async def body_chunks(request: web.Request, size: int) -> AsyncIterator[bytes]:
    """A streamed body (large uploads) in chunks of up to ``size`` bytes; each must arrive
    within the body deadline, so a stalled upload ends while a long steady one does not."""
    while True:
        async with _receiving(request):
            chunk = await request.content.read(size)
        if not chunk:
            return
        yield chunk


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ApiError(400, "validation_error", "the query string failed validation",
                       validation_details(exc)) from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# aiohttp's own protocol (the parameter names are part of it), so the app's list type-checks.
Middleware = aiohttp.typedefs.Middleware


def make_error_middleware(passthrough_paths: frozenset[str]) -> Middleware:
    """Shape errors everywhere except ``passthrough_paths`` (the media WebSocket keeps aiohttp's)."""

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in passthrough_paths:
            return await handler(request)
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
        except ClientGone:
            # Anyone can do this, as often as they like: it must not flood the log.
            log.debug("client disconnected before sending its whole body: %s %s", request.method, request.path)
            return error_response(400, "incomplete_body", "the request body ended early",
                                  headers={"Connection": "close"})
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            kept = ("allow", "retry-after", "www-authenticate")
            headers = {k: v for k, v in exc.headers.items() if k.lower() in kept}
            message = exc.reason
            if exc.status == 413:
                message = "the request body is larger than this server accepts"
            return error_response(exc.status, _CODES.get(exc.status, "error"), message, None, headers)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return error_response(500, "internal_error", "internal server error")

    return error_middleware
