"""The full path's caller follows a re-attach: when the engine loses a call's media stream and
``streaming_start``\\s a new one, the callee on the new stream gets the call's script again (it
used to be handed out once, so the new stream's callee failed with a KeyError, the call sat
silent until the run ended and counted as failed), and the call is measured when it ends."""

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.callee import CallMeasurement
from bench.corpus.model import CallScript
from bench.runner import FullPath

SCRIPT = CallScript(name="plain-1", category="plain", answer="human", steps=())


class Call:
    """What the Telnyx emulator hands the callee factory and ``on_result``."""

    def __init__(self, to: str) -> None:
        self.to = to
        self.ended = asyncio.Event()

    async def wait_ended(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.ended.wait(), timeout)


async def test_a_reattached_stream_plays_the_script_and_the_call_is_measured_when_it_ends():
    dialled: list[str] = []

    async def start(request: web.Request) -> web.Response:
        dialled.append((await request.json())["to"])
        return web.json_response({"call_id": "c1"})

    app = web.Application()
    app.router.add_post("/api/calls/start", start)
    server = TestServer(app)
    await server.start_server()
    full = FullPath(carrier=None, api_key="k")
    try:
        async with aiohttp.ClientSession() as client:
            measured = asyncio.ensure_future(full.call(str(server.make_url("")).rstrip("/"), SCRIPT, client))
            while not dialled:
                await asyncio.sleep(0.01)
            call = Call(dialled[0])
            assert full.pick(call) is SCRIPT  # the first stream
            cut = CallMeasurement(script=SCRIPT.name, category=SCRIPT.category)
            full.on_result(call, cut)  # the engine lost it
            assert full.pick(call) is SCRIPT  # the re-attached stream
            await asyncio.sleep(0.05)
            assert not measured.done()  # the call is still up
            done = CallMeasurement(script=SCRIPT.name, category=SCRIPT.category, completed=True)
            full.on_result(call, done)
            call.ended.set()
            assert await asyncio.wait_for(measured, 5) is done
            assert not full.scripts and not full.results and not full.waiting
    finally:
        await server.close()
