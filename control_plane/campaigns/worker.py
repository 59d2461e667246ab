"""``python -m control_plane.campaigns.worker``: an extra campaign dialer process.

Configured like the server (same environment: ``DATABASE_URL``, ``REDIS_URL``, the Telnyx
settings, ``CALLAGENT_SERVER__PUBLIC_URL`` for the stream and webhook URLs, the encryption
keys). Run as many as you like next to the app: contacts are claimed with ``FOR UPDATE SKIP
LOCKED`` and every dial is committed under the campaign's row lock, so workers never dial a
contact twice or exceed a cap. Pacing and the organisation's call-start limit are shared
through Redis: set ``REDIS_URL`` when running more than one dialer process. PostgreSQL only
(SQLite is a single-process store: there, the app's own dialer is the one).

SIGTERM/SIGINT stop claiming, let dials in flight finish and exit; a ``kill -9`` loses
nothing either: the worker's leases run out and another process takes its contacts over.

``--metrics-port`` serves the worker's Prometheus families (dials, dial errors, campaigns,
event-loop lag, DB pool, process) on ``/metrics``, its liveness on ``/healthz`` and its
readiness on ``/readyz``: 200 when it can place calls (PostgreSQL and Redis answer, Telnyx
dials are configured, its dialer runs), 503 with the failing checks otherwise and from the
moment it is told to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import web

from ..health import dialer_readiness
from ..logfmt import configure
from ..metrics import event_loop_watch, exposition
from ..services import ControlPlane
from ..settings import Settings

log = logging.getLogger("control_plane.campaigns.worker")


async def serve_probes(cp: ControlPlane, host: str, port: int, *, webhooks: bool = False) -> web.AppRunner:
    """A tiny HTTP server: ``/metrics``, ``/healthz`` (liveness: the event loop answers) and
    ``/readyz`` (readiness: this worker can place calls, :func:`control_plane.health.dialer_readiness`);
    returns its runner (``await runner.cleanup()``)."""
    registry = cp.metrics.registry

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = exposition(registry, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ready, checks = await dialer_readiness(cp, webhooks=webhooks)
        return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                                 status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    return runner


async def run_worker(settings: Any, *, webhooks: bool = False, stop: asyncio.Event | None = None,
                     metrics_port: int | None = None) -> None:
    """Dial until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None); with ``metrics_port``,
    serve ``/metrics``, ``/healthz`` and ``/readyz`` on it (the server's host setting) meanwhile.
    Once stopping, ``/readyz`` answers 503 (draining) while the dials in flight finish."""
    if settings.database_url is None:
        raise SystemExit("the campaign worker needs PostgreSQL (DATABASE_URL): with SQLite the app dials alone")
    campaigns = settings.campaigns.model_copy(update={"dialer": True})
    cp = ControlPlane(settings.model_copy(update={"campaigns": campaigns}))
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
    await cp.start()
    probes = None
    try:
        if metrics_port is not None:
            probes = await serve_probes(cp, settings.server.host, metrics_port, webhooks=webhooks)
        if not webhooks:
            await cp.worker.stop()  # leave stored webhooks to the app (or run with --webhooks)
        cp.campaigns.start()
        log.info("campaign worker %s dialling", cp.campaigns.dialer.worker_id)
        async with event_loop_watch(cp.metrics.event_loop_lag):
            await stop.wait()
        await cp.begin_drain()  # not ready from here; no new claims, dials in flight finish
    finally:
        await cp.close()
        if probes is not None:
            await probes.cleanup()
        log.info("campaign worker stopped")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m control_plane.campaigns.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--webhooks", action="store_true",
                        help="also process stored Telnyx webhooks (the app does it by default)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve /metrics, /healthz and /readyz at this port (on the server.host interface)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings, webhooks=args.webhooks, metrics_port=args.metrics_port))


if __name__ == "__main__":
    main()
