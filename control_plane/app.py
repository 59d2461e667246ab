"""The aiohttp application: media streams, health and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.edge import ListenerFactory, MediaStreamEndpoint
from engine.metrics import EngineMetrics

from .settings import Settings

METRICS_KEY = web.AppKey("metrics", EngineMetrics)
SETTINGS_KEY = web.AppKey("settings", Settings)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "active_streams": len(request.app[METRICS_KEY].sessions.live)})


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(settings: Settings, listener_factory: ListenerFactory | None = None) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    metrics = EngineMetrics()
    app[METRICS_KEY] = metrics
    app[SETTINGS_KEY] = settings
    token = settings.stream_auth_token.get_secret_value() if settings.stream_auth_token else None
    kwargs = {} if listener_factory is None else {"listener_factory": listener_factory}
    endpoint = MediaStreamEndpoint(settings.engine, metrics, auth_token=token, **kwargs)
    app.router.add_get(settings.server.media_path, endpoint.handle)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app
