"""The bench reads the engine's own mark-echo counters off its /metrics."""

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.runner import _mark_echo_counters

METRICS = """# HELP callagent_mark_echoes_overdue_total Agent utterances taken as played ...
# TYPE callagent_mark_echoes_overdue_total counter
callagent_mark_echoes_overdue_total 12.0
callagent_mark_echoes_late_total 3.0
callagent_frames_in_total 5000.0
"""


async def read(body, status=200):
    async def metrics(request):
        return web.Response(text=body, status=status)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as client:
            return await _mark_echo_counters(client, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


async def test_counters_are_read_from_the_engines_metrics():
    assert await read(METRICS) == {"overdue": 12, "late": 3}


async def test_an_engine_without_them_gives_none_rather_than_failing_the_run():
    assert await read("callagent_frames_in_total 5000.0\n") == {}
    assert await read("nope", status=404) == {}
