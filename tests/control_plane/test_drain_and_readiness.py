"""Graceful drain (SIGTERM, in-process) and the liveness/readiness split."""

from __future__ import annotations

import asyncio

import aiohttp
from yarl import URL

from bench.signals import silence
from control_plane.app import MEDIA_KEY
from control_plane.drain import close_for_recovery, drain
from tests.engine.helpers import media_frames, start_frame

from .conftest import make_settings
from .fakes import harness

WAIT_S = 10.0  # a guard against hanging, never a measured expectation


async def _live_call(h, headers):
    """A dialled call with its media stream open, as Telnyx would have it."""
    started = await h.start_call(headers)
    assert started.status == 201
    call = await started.json()
    stream_url = URL(h.telnyx.named("dial")[-1]["stream_url"])  # carries the call's own credential
    ws = await h.client.ws_connect(stream_url.path_qs)
    await ws.send_bytes(start_frame(call_control_id=call["call_control_id"]))
    media = h.client.server.app[MEDIA_KEY]
    await _until(lambda: media.sessions and media.sessions[0].started)
    return call, ws, media


async def _until(predicate) -> None:
    """Yield to the server until ``predicate()`` holds (no clock involved; bounded)."""
    async with asyncio.timeout(WAIT_S):
        while not predicate():
            await asyncio.sleep(0)


async def test_draining_refuses_new_work_while_a_live_call_and_its_webhooks_go_on(tmp_path):
    # Fails before the change: there was no drain (SIGTERM closed the listener at once) and no /readyz.
    settings = make_settings(tmp_path, telnyx_api_key="KEY_test", campaigns={"dialer": True})
    async with harness(settings) as h:
        _, headers = await h.org()
        call, ws, media = await _live_call(h, headers)
        assert (await h.client.get("/readyz")).status == 200
        await _until(lambda: h.cp.campaigns.dialer.running)

        interrupt = asyncio.Event()
        draining = asyncio.create_task(drain(h.cp, media, 3600, interrupt=interrupt))
        await _until(lambda: h.cp.draining and not h.cp.campaigns.dialer.running)

        ready = await h.client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["checks"]["accepting"] == "draining"
        assert (await h.client.get("/healthz")).status == 200
        refused = await h.start_call(headers)
        assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
        assert (await refused.json())["error"]["code"] == "draining"
        assert len(h.telnyx.named("dial")) == 1  # only the live call's
        h.cp.campaigns.start()  # a late store open must not restart claiming either
        assert not h.cp.campaigns.dialer.running

        # The live call goes on: its stream flows, its webhooks are accepted and applied.
        for frame in media_frames(silence(0.2)):
            await ws.send_bytes(frame)
        answered = await h.webhook("call.answered", {"call_control_id": call["call_control_id"]})
        assert answered.status == 200
        await h.settle()
        detail = await (await h.client.get(f"/api/calls/{call['call_id']}", headers=headers)).json()
        assert detail["status"] == "answered"
        assert not draining.done() and not ws.closed

        # The caller hangs up: Telnyx closes the stream, the drain ends, nothing was handed over.
        await ws.close()
        report = await asyncio.wait_for(draining, WAIT_S)
        assert (report.live_at_start, report.handed_over) == (1, 0)
        hangup = await h.webhook("call.hangup", {"call_control_id": call["call_control_id"],
                                                 "hangup_cause": "normal_clearing"})
        assert hangup.status == 200


async def test_calls_still_up_after_the_grace_are_handed_over(tmp_path):
    settings = make_settings(tmp_path, telnyx_api_key="KEY_test")
    async with harness(settings) as h:
        _, headers = await h.org()
        call, ws, media = await _live_call(h, headers)
        handed = []

        async def record_then_close(endpoint):
            handed.extend(s.call_control_id for s in endpoint.sessions)
            return await close_for_recovery(endpoint)

        interrupt = asyncio.Event()
        draining = asyncio.create_task(drain(h.cp, media, 3600, interrupt=interrupt, hand_over=record_then_close))
        await _until(lambda: h.cp.draining)
        closed = asyncio.create_task(ws.receive())  # the carrier side answers the close at once
        interrupt.set()  # the grace is over (a second SIGTERM, or the time ran out)
        report = await asyncio.wait_for(draining, WAIT_S)
        assert report.handed_over == 1 and handed == [call["call_control_id"]]
        msg = await asyncio.wait_for(closed, WAIT_S)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.SERVICE_RESTART
        assert media.sessions == []


async def test_the_grace_runs_out_without_a_signal(tmp_path):
    async with harness(make_settings(tmp_path, telnyx_api_key="KEY_test")) as h:
        _, headers = await h.org()
        _, ws, media = await _live_call(h, headers)
        closed = asyncio.create_task(ws.receive())
        report = await asyncio.wait_for(drain(h.cp, media, 0.05), WAIT_S)
        assert report.handed_over == 1
        assert (await asyncio.wait_for(closed, WAIT_S)).type is aiohttp.WSMsgType.CLOSE


async def test_readyz_is_false_with_redis_down_while_healthz_stays_ok(tmp_path):
    # Fails before the change: there was no /readyz, and /healthz said ok with Redis down.
    down = make_settings(tmp_path / "down", telnyx_api_key="KEY_test", redis_url="redis://127.0.0.1:1/0")
    async with harness(down) as h:
        await h.org()  # the store exists and answers
        assert (await h.client.get("/healthz")).status == 200
        ready = await h.client.get("/readyz")
        body = await ready.json()
        assert ready.status == 503 and body["status"] == "not_ready"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("unreachable")
        assert "127.0.0.1:1" not in str(body)


async def test_readyz_names_what_is_missing_and_is_true_when_all_answer(tmp_path, redis_prefix):
    async with harness(make_settings(tmp_path / "bare")) as h:
        body = await (await h.client.get("/readyz")).json()
        assert body["checks"]["telnyx"] == "missing TELNYX_API_KEY"
        assert body["checks"]["database"] == "not_used"  # the embedded store is not created by a probe
        assert not (tmp_path / "bare" / "callagent.sqlite3").exists()
    settings = make_settings(tmp_path / "up", telnyx_api_key="KEY_test", redis_prefix=redis_prefix)
    async with harness(settings) as h:
        await h.org()
        ready = await h.client.get("/readyz")
        assert ready.status == 200, await ready.text()
        assert (await ready.json())["checks"] == {"database": "ok", "redis": "ok", "telnyx": "ok", "accepting": "ok"}
