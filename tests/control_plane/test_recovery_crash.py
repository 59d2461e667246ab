"""``callagent serve`` SIGKILLed mid-call and started again: the call is picked up again (issue 14,
item 1). Before, the row stayed ``answered`` for ever and the callee heard nobody again."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import unused_port

from bench.telnyx_emulator import DeliverySwitches, SilentCallee, start_emulator
from control_plane.auth import issue_api_key
from control_plane.store import open_repository

from .conftest import ENCRYPTION_KEY, LOOKUP_KEY, make_settings
from .test_campaigns_crash import _kill, _spawn, _until, is_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a real server process, SIGKILLed and restarted


CALLS = int(os.environ.get("CALLAGENT_TEST_CRASH_CALLS", "3"))
"""Calls in flight at the kill (the issue's figure is for 20: set the variable to measure it)."""


@pytest.fixture
def crash_settings(backend, tmp_path, request):
    """SQLite alone, or PostgreSQL with Redis (the stream leases then live in Redis)."""
    if backend == "postgres":
        return make_settings(tmp_path, backend="postgres", pg_schema=request.getfixturevalue("pg_schema"),
                             redis_prefix=request.getfixturevalue("redis_prefix"))
    return make_settings(tmp_path)


@pytest.mark.parametrize("stop", ["sigkill", "sigterm"])
async def test_calls_survive_their_server_stopping(tmp_path, backend, crash_settings, stop):
    """SIGKILL: nothing is cleaned up. SIGTERM: the server drains (grace cut to 1 s here), hands its
    live calls over by closing their streams, and keeps accepting webhooks until it exits; a
    server started after it picks every call up. Either way every caller hears the agent again."""
    callees: dict[str, list[SilentCallee]] = {}

    def factory(call: Any) -> SilentCallee:
        callee = SilentCallee()
        callees.setdefault(call.call_control_id, []).append(callee)
        return callee

    # Webhooks sent while the server is down are retried, as Telnyx does.
    emulator = await start_emulator(callee_factory=factory, switches=DeliverySwitches(max_attempts=12, backoff_s=0.2))
    port = unused_port()
    base = f"http://127.0.0.1:{port}"
    settings = crash_settings
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALLAGENT_", "TELNYX_")) and k not in ("DATABASE_URL", "REDIS_URL")}
    if backend == "postgres":
        env.update({
            "DATABASE_URL": settings.database_url.get_secret_value(),
            "CALLAGENT_STORE__SCHEMA_NAME": settings.store.schema_name,
            "REDIS_URL": settings.redis_url.get_secret_value(), "CALLAGENT_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        })
    env.update({
        "CALLAGENT_DATA_DIR": str(tmp_path), "CALLAGENT_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CALLAGENT_LOOKUP_HASH_KEY": LOOKUP_KEY,
        "CALLAGENT_TELNYX_API_KEY": emulator.api_key, "CALLAGENT_TELNYX_API_BASE": emulator.base_url,
        "CALLAGENT_TELNYX_PUBLIC_KEY": emulator.public_key_b64, "CALLAGENT_TELNYX_CONNECTION_ID": "1234567890",
        "CALLAGENT_SERVER__PUBLIC_URL": base, "CALLAGENT_PROVIDERS__MODE": "local",
        "CALLAGENT_STREAMS__ANSWER_GRACE_S": "0", "CALLAGENT_STREAMS__SWEEP_INTERVAL_S": "0.5",
        "CALLAGENT_WEBHOOKS__POLL_INTERVAL_S": "0.1",
        # Events the killed process had claimed wait out this lease before the new one takes them.
        # (60 s by default: the p95 of the gap with 20 calls was then 60 s, the calls whose
        # call.answered was claimed but not processed being found only after it.)
        "CALLAGENT_WEBHOOKS__CLAIM_LEASE_S": "3", "PYTHONUNBUFFERED": "1",
        "CALLAGENT_SERVER__DRAIN_GRACE_S": "1",
        "CALLAGENT_LOG_LEVEL": os.environ.get("CALLAGENT_TEST_CRASH_LOG_LEVEL", "WARNING"),
    })
    args = ["-m", "callagent", "serve", "--port", str(port)]
    services = []
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation("crash")
        _, secret = await issue_api_key(repo, org.id, "crash")
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession() as http:
            def healthy() -> Any:
                return is_healthy(http, base)

            services.append(_spawn(args, env, tmp_path / "serve-1.log"))
            await _until(healthy, 60, "server up")
            calls = []
            for i in range(CALLS):
                body = {"to": f"+1415555{i:04d}", "from": "+14155550100",
                        "agent_config": {"personality": "friendly", "language": "en", "first_message": "Hello!"}}
                async with http.post(f"{base}/api/calls/start", json=body, headers=headers) as response:
                    assert response.status == 201, await response.text()
                    calls.append(await response.json())

            def heard(ccid: str, stream: int) -> bool:
                mine = callees.get(ccid, [])
                return len(mine) > stream and mine[stream].queue is not None and mine[stream].queue.chunks > 0

            async def all_heard(stream: int) -> bool:
                return all(heard(c["call_control_id"], stream) for c in calls)

            await _until(lambda: all_heard(0), 60, "the agents greeting their callees")
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            if stop == "sigkill":
                _kill(services[0])  # no cleanup, the streams' sockets just go
            else:
                services[0].send_signal(signal.SIGTERM)
                assert await loop.run_in_executor(None, services[0].wait, 30) == 0  # drained and exited
            services.append(_spawn(args, env, tmp_path / "serve-2.log"))
            gaps: dict[str, float] = {}

            async def all_heard_again() -> bool:
                for c in calls:
                    if c["call_control_id"] not in gaps and heard(c["call_control_id"], 1):
                        gaps[c["call_control_id"]] = loop.time() - killed_at
                return len(gaps) == len(calls)

            await _until(all_heard_again, 90, "every agent heard again after the restart")
            for c in calls:
                row = await repo.get_call_unscoped(uuid.UUID(c["call_id"]))
                assert row.status == "answered" and emulator.calls[c["call_control_id"]].is_alive
                assert len(callees[c["call_control_id"]]) == 2  # re-attached exactly once
            if stop == "sigterm":  # while it drained, the server refused no webhook
                refused = [d for d in emulator.hooks.deliveries if d.status is not None and d.status >= 400]
                assert refused == [], refused
            ordered = sorted(gaps.values())
            print(f"{stop.upper()} with {CALLS} calls ({backend}) -> agents heard again (restart included): "
                  f"p50 {ordered[len(ordered) // 2]:.2f} s, "
                  f"p95 {ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]:.2f} s")

            for c in calls:
                emulator.calls[c["call_control_id"]].hang_up()

            async def completed() -> bool:
                rows = [await repo.get_call_unscoped(uuid.UUID(c["call_id"])) for c in calls]
                return all(row.status == "completed" for row in rows)

            await _until(completed, 30, "the call rows completed")
        _kill(services[1], signal.SIGTERM)
    finally:
        for service in services:
            _kill(service)
        await repo.close()
        await emulator.close()
