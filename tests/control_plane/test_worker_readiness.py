"""The campaign worker's probes: ``/healthz`` says the process answers, ``/readyz`` that it can
place calls (its queue's store and Redis answer, Telnyx dials are configured, its dialer runs
and is not stopping). Kubernetes reads both (deploy/kubernetes/base/worker-deployment.yaml)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from callagent.local import free_port
from control_plane.campaigns.worker import run_worker
from control_plane.health import dialer_readiness
from control_plane.services import ControlPlane
from tests.fixtures.waiting import eventually

from .conftest import make_settings


async def _get(port: int, path: str) -> tuple[int, Any] | None:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as resp:
            return resp.status, await resp.json()
    except aiohttp.ClientConnectionError:
        return None  # not serving yet


async def test_the_worker_serves_liveness_and_readiness(tmp_path, pg_schema, redis_prefix):
    settings = make_settings(tmp_path, backend="postgres", pg_schema=pg_schema, redis_prefix=redis_prefix,
                             telnyx_api_key="KEY_test")
    port = free_port("127.0.0.1")
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_worker(settings, stop=stop, metrics_port=port))
    try:
        async def ready() -> Any:
            assert not task.done(), task.exception()
            answer = await _get(port, "/readyz")
            return answer if answer is not None and answer[0] == 200 else None

        _, body = await eventually(ready, timeout=30)
        assert body == {"status": "ready",
                        "checks": {"database": "ok", "redis": "ok", "telnyx": "ok", "dialer": "ok"}}
        assert await _get(port, "/healthz") == (200, {"status": "ok"})
    finally:
        stop.set()
        await task


async def test_a_worker_that_cannot_dial_is_not_ready(tmp_path, pg_schema):
    # No Telnyx key, Redis configured but down: each failing check says why (no URL, no password).
    settings = make_settings(tmp_path, backend="postgres", pg_schema=pg_schema,
                             redis_url=f"redis://:secret@127.0.0.1:{free_port('127.0.0.1')}/0")
    port = free_port("127.0.0.1")
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_worker(settings, stop=stop, metrics_port=port))
    try:
        async def answered() -> Any:
            assert not task.done(), task.exception()
            return await _get(port, "/readyz")

        status, body = await eventually(answered, timeout=30)
        assert status == 503 and body["status"] == "not_ready"
        checks = body["checks"]
        assert checks["database"] == "ok" and checks["dialer"] == "ok"
        assert checks["telnyx"] == "missing TELNYX_API_KEY"  # the webhook key is the app's business
        assert checks["redis"].startswith("unreachable") and "secret" not in checks["redis"]
        assert (await _get(port, "/healthz"))[0] == 200  # alive: a restart would not cure this
    finally:
        stop.set()
        await task


async def test_a_stopping_worker_is_not_ready(tmp_path, pg_schema):
    settings = make_settings(tmp_path, backend="postgres", pg_schema=pg_schema, telnyx_api_key="KEY_test")
    cp = ControlPlane(settings)
    await cp.start()
    try:
        cp.campaigns.start()
        ready, checks = await dialer_readiness(cp)
        assert ready and checks == {"database": "ok", "redis": "not_used", "telnyx": "ok", "dialer": "ok"}
        await cp.begin_drain()  # SIGTERM: no new claims, dials in flight finish
        ready, checks = await dialer_readiness(cp)
        assert not ready and checks["dialer"] == "draining"
    finally:
        await cp.close()
