"""The aiohttp application: media streams, REST API, Telnyx webhooks, health and metrics.

Routes: the media WebSocket (``server.media_path``), ``/healthz`` (liveness),
``/readyz`` (readiness, :mod:`control_plane.health`), ``/metrics``,
``/openapi.json``, ``POST /webhook/telnyx`` (signed, no API key) and ``/api/...``
(``Authorization: Bearer <api key>``). Errors outside the media path share one shape
(:mod:`control_plane.errors`). The :class:`~control_plane.services.ControlPlane` is
started and closed with the app (``cleanup_ctx``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from engine.conversation.agent import finish_reports
from engine.edge import ListenerFactory, MediaStreamEndpoint
from engine.metrics import EngineMetrics

from .api.openapi import build_openapi
from .api.routes import add_routes
from .auth import make_auth_middleware
from .context import CONTROL_PLANE_KEY, MEDIA_KEY, METRICS_KEY, SETTINGS_KEY
from .dashboard.routes import dashboard_app
from .errors import BODY_DEADLINE_KEY, Handler, Middleware, json_response, make_error_middleware
from .events import receive_webhook
from .health import readiness
from .metrics import UNMATCHED_ROUTE, ControlPlaneMetrics, event_loop_watch, exposition
from .services import ControlPlane
from .settings import Settings
from .streamauth import StreamGate

WEBHOOK_PATH = "/webhook/telnyx"


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "active_streams": len(request.app[METRICS_KEY].sessions.live)})


async def _readyz(request: web.Request) -> web.Response:
    ready, checks = await readiness(request.app[CONTROL_PLANE_KEY])
    return json_response({"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = exposition(request.app[METRICS_KEY].registry, request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def make_http_metrics_middleware(metrics: ControlPlaneMetrics, skip: frozenset[str]) -> Middleware:
    """Count each request by its route template (``/api/calls/{call_id}``, never the raw path:
    label values stay bounded) and status. The media WebSocket is skipped: a call's stream is
    one request lasting the whole call, measured by the engine's own families."""
    requests, duration = metrics.http_requests, metrics.http_duration

    @web.middleware
    async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in skip:
            return await handler(request)
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            labels = (request.method, _route_of(request), str(status))
            requests.labels(*labels).inc()
            duration.labels(*labels).observe(time.perf_counter() - start)

    return http_metrics


_OPENAPI_KEY = web.AppKey("openapi", dict)


async def _openapi(request: web.Request) -> web.Response:
    cache = request.app[_OPENAPI_KEY]
    if not cache:
        cache.update(build_openapi(server_url=request.app[SETTINGS_KEY].server.public_url))
    return json_response(cache)


async def _control_plane_ctx(app: web.Application) -> AsyncIterator[None]:
    cp = app[CONTROL_PLANE_KEY]
    try:
        await cp.start()
        async with event_loop_watch(cp.metrics.event_loop_lag):
            yield
    finally:
        # Calls cut off by the shutdown write their summaries and outcomes first.
        await finish_reports()
        await cp.close()


LINGERING_S = 1.0
"""After answering a request whose body it did not read (408, 413, 401 before the body),
aiohttp reads on for this long before closing, so the client sees the answer rather than a
reset; its default, 10 s, would let each slow client hold its connection that much longer."""


def app_runner(app: web.Application) -> web.AppRunner:
    """The runner ``callagent serve`` uses for ``app``. The access log (one line per request,
    logger ``aiohttp.access``) is off unless ``server.access_log`` turns it on."""
    kwargs: dict[str, Any] = {} if app[SETTINGS_KEY].server.access_log else {"access_log": None}
    return web.AppRunner(app, lingering_time=LINGERING_S, **kwargs)


def create_app(settings: Settings, listener_factory: ListenerFactory | None = None) -> web.Application:
    metrics = EngineMetrics()
    cp = ControlPlane(settings, metrics=ControlPlaneMetrics(metrics.registry))
    media_paths = frozenset({settings.server.media_path})
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[make_http_metrics_middleware(cp.metrics, media_paths), make_error_middleware(media_paths),
                     make_auth_middleware(cp)],
    )
    app[METRICS_KEY] = metrics
    app[SETTINGS_KEY] = settings
    app[CONTROL_PLANE_KEY] = cp
    app[BODY_DEADLINE_KEY] = settings.server.body_timeout_s
    app[_OPENAPI_KEY] = {}
    kwargs: dict[str, Any] = {} if listener_factory is None else {"listener_factory": listener_factory}
    endpoint = MediaStreamEndpoint(settings.engine, metrics, admit=StreamGate(cp).admit, **kwargs)
    app[MEDIA_KEY] = endpoint
    app.router.add_get(settings.server.media_path, endpoint.handle)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_post(WEBHOOK_PATH, receive_webhook)
    add_routes(app)
    if settings.dashboard.enabled:
        app.add_subapp("/dashboard", dashboard_app(cp))
    app.cleanup_ctx.append(_control_plane_ctx)
    return app
