"""User tools declared as HTTP endpoints: the model's arguments POSTed over a real socket."""

import asyncio

import aiohttp
from aiohttp import web

from engine.conversation.config import HttpTool
from engine.conversation.tools import run_http_tool


def run(coro):
    return asyncio.run(coro)


async def _serve(handler):
    app = web.Application()
    app.router.add_post("/tool", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/tool"


def test_the_arguments_are_posted_and_the_reply_is_the_result():
    seen = []

    async def handler(request):
        seen.append((await request.json(), request.headers.get("Authorization")))
        return web.Response(text='{"slots": ["9:00", "11:30"]}')

    async def main():
        runner, url = await _serve(handler)
        tool = HttpTool(name="find_slots", description="d", url=url, headers={"Authorization": "Bearer k"})
        async with aiohttp.ClientSession() as session:
            result = await run_http_tool(tool, '{"day": "monday"}', session)
        await runner.cleanup()
        return result

    assert run(main()) == '{"slots": ["9:00", "11:30"]}'
    assert seen == [({"day": "monday"}, "Bearer k")]


def test_failures_become_readable_results_for_the_model_not_exceptions():
    async def failing(request):
        return web.Response(status=500, text="boom")

    async def slow(request):
        await asyncio.sleep(2)
        return web.Response(text="late")

    async def main():
        bad, bad_url = await _serve(failing)
        late, late_url = await _serve(slow)
        async with aiohttp.ClientSession() as session:
            results = [
                await run_http_tool(HttpTool(name="t", description="d", url=bad_url), "{}", session),
                await run_http_tool(HttpTool(name="t", description="d", url=late_url, timeout_s=0.2), "{}", session),
                await run_http_tool(HttpTool(name="t", description="d", url=bad_url), "{not json", session),
                await run_http_tool(HttpTool(name="t", description="d", url="http://127.0.0.1:9/x"), "{}", session),
            ]
        await bad.cleanup()
        await late.cleanup()
        return results

    failed, timed_out, bad_json, refused = run(main())
    assert failed == "error: t failed with HTTP 500"
    assert timed_out == "error: t is unavailable (TimeoutError)"
    assert bad_json == "error: the arguments for t were not valid JSON"
    assert refused.startswith("error: t is unavailable (")
