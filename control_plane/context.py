"""The application's typed context: the keys under which the aiohttp app holds its long-lived parts.

``create_app`` (:mod:`control_plane.app`) stores the :class:`~control_plane.services.ControlPlane`,
the settings, the engine's metrics and the media endpoint under these :class:`aiohttp.web.AppKey`\\ s;
request handlers read them with :func:`control_plane` / :func:`settings` (which look through
sub-applications too, so the dashboard's handlers use the same calls).

This module imports nothing of the project at run time (the types are for the checker only), so
any handler module can import it without importing the app, and the app can import the handlers:
that is what keeps ``app -> handlers -> context`` free of cycles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from engine.edge import MediaStreamEndpoint
    from engine.metrics import EngineMetrics

    from .services import ControlPlane
    from .settings import Settings

CONTROL_PLANE_KEY: web.AppKey[ControlPlane] = web.AppKey("control_plane")
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings")
METRICS_KEY: web.AppKey[EngineMetrics] = web.AppKey("metrics")
MEDIA_KEY: web.AppKey[MediaStreamEndpoint] = web.AppKey("media")


def control_plane(request: web.Request) -> ControlPlane:
    """The control plane serving ``request`` (from the root app, also inside a sub-app)."""
    return request.config_dict[CONTROL_PLANE_KEY]


def settings(request: web.Request) -> Settings:
    return request.config_dict[SETTINGS_KEY]
