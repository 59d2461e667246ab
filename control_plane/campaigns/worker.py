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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from ..services import ControlPlane
from ..settings import Settings

log = logging.getLogger("control_plane.campaigns.worker")


async def run_worker(settings: Any, *, webhooks: bool = False, stop: asyncio.Event | None = None) -> None:
    """Dial until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
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
    try:
        if not webhooks:
            await cp.worker.stop()  # leave stored webhooks to the app (or run with --webhooks)
        cp.campaigns.start()
        log.info("campaign worker %s dialling", cp.campaigns.dialer.worker_id)
        await stop.wait()
    finally:
        await cp.close()
        log.info("campaign worker stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m control_plane.campaigns.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--webhooks", action="store_true",
                        help="also process stored Telnyx webhooks (the app does it by default)")
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings, webhooks=args.webhooks))


if __name__ == "__main__":
    main()
