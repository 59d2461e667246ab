"""The engine as the bench runs it: ``callagent serve`` plus one read-only bench route.

``GET /bench/turns`` returns the engine's own per-turn timelines (kept only here, not in
production servers), so the bench can set the engine's accounting beside what the
caller measured at the carrier edge. Run as ``python -m bench.engine_server --port P``;
providers and everything else come from the environment like ``callagent serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

from callagent import build_server, configure_logging, freeze_startup_heap, run
from control_plane.app import METRICS_KEY
from control_plane.settings import Settings

KEEP_TURNS = 100_000


async def _turns(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[METRICS_KEY].recent_turns))


async def serve(host: str, port: int) -> None:
    server = await build_server(Settings(), keep_turns=KEEP_TURNS)  # as `callagent serve` does
    app = server.app
    app.router.add_get("/bench/turns", _turns)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    freeze_startup_heap()
    print(f"ready http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    configure_logging("WARNING")
    run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
