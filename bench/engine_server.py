"""The engine as the bench runs it: ``callagent serve`` plus one read-only bench route.

``GET /bench/turns`` returns the engine's own per-turn timelines (kept only here, not in
production servers), so the bench can set the engine's accounting beside what the
caller measured at the carrier edge; ``?unmeasured=1``, the turns it answered without measuring
them, for how they ended. Run as ``python -m bench.engine_server --port P``;
providers and everything else come from the environment like ``callagent serve``. The virtual
clock's bench (bench.virtual) builds the same server in its own process with
:func:`build_bench_server`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

from callagent import Server, build_server, configure_logging, freeze_startup_heap, run
from control_plane.app import METRICS_KEY
from control_plane.settings import Settings

KEEP_TURNS = 100_000


async def _turns(request: web.Request) -> web.Response:
    """The measured turns; with ``?unmeasured=1``, the answered turns that were not measured."""
    metrics = request.app[METRICS_KEY]
    kept = metrics.unmeasured_turns if request.query.get("unmeasured") else metrics.recent_turns
    return web.json_response(list(kept))


async def build_bench_server(settings: Settings) -> Server:
    """``build_server`` as ``callagent serve`` calls it, keeping the turns, plus ``/bench/turns``."""
    server = await build_server(settings, keep_turns=KEEP_TURNS)
    server.app.router.add_get("/bench/turns", _turns)
    return server


async def serve(host: str, port: int) -> None:
    server = await build_bench_server(Settings())  # settings from the environment, as `callagent serve`
    app = server.app
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
