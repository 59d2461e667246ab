"""``callagent serve`` SIGKILLed mid-call and started again: the call is picked up again (issue 14,
item 1). Before, the row stayed ``answered`` for ever and the callee heard nobody again."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Any

import aiohttp
from aiohttp.test_utils import unused_port

from bench.telnyx_emulator import DeliverySwitches, SilentCallee, start_emulator
from control_plane.auth import issue_api_key
from control_plane.store import open_repository

from .conftest import ENCRYPTION_KEY, LOOKUP_KEY, make_settings
from .helpers import run_async
from .test_campaigns_crash import _kill, _spawn, _until, is_healthy


@run_async
async def test_a_call_survives_a_sigkill_of_the_server(tmp_path):
    callees: list[SilentCallee] = []

    def factory(call: Any) -> SilentCallee:
        callees.append(SilentCallee())
        return callees[-1]

    # Webhooks sent while the server is down are retried, as Telnyx does.
    emulator = await start_emulator(callee_factory=factory, switches=DeliverySwitches(max_attempts=12, backoff_s=0.2))
    port = unused_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALLAGENT_", "TELNYX_")) and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "CALLAGENT_DATA_DIR": str(tmp_path), "CALLAGENT_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CALLAGENT_LOOKUP_HASH_KEY": LOOKUP_KEY,
        "CALLAGENT_TELNYX_API_KEY": emulator.api_key, "CALLAGENT_TELNYX_API_BASE": emulator.base_url,
        "CALLAGENT_TELNYX_PUBLIC_KEY": emulator.public_key_b64, "CALLAGENT_TELNYX_CONNECTION_ID": "1234567890",
        "CALLAGENT_SERVER__PUBLIC_URL": base, "CALLAGENT_PROVIDERS__MODE": "local",
        "CALLAGENT_STREAMS__ANSWER_GRACE_S": "0", "CALLAGENT_STREAMS__SWEEP_INTERVAL_S": "0.5",
        "CALLAGENT_WEBHOOKS__POLL_INTERVAL_S": "0.1", "CALLAGENT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
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
            body = {"to": "+14155550123", "from": "+14155550100",
                    "agent_config": {"personality": "friendly", "language": "en", "first_message": "Hello there!"}}
            async with http.post(f"{base}/api/calls/start", json=body, headers=headers) as response:
                assert response.status == 201, await response.text()
                call = await response.json()

            async def heard(index: int) -> bool:
                return len(callees) > index and callees[index].queue is not None and callees[index].queue.chunks > 0

            await _until(lambda: heard(0), 30, "the agent greeting the callee")
            _kill(services[0])  # SIGKILL: no cleanup, the stream's socket just goes
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            services.append(_spawn(args, env, tmp_path / "serve-2.log"))
            await _until(lambda: heard(1), 60, "the agent heard again after the restart")
            gap = loop.time() - killed_at
            row = await repo.get_call_unscoped(uuid.UUID(call["call_id"]))
            assert row.status == "answered" and emulator.calls[call["call_control_id"]].is_alive
            print(f"SIGKILL -> restarted server's agent heard again: {gap:.2f} s (includes the restart)")

            emulator.calls[call["call_control_id"]].hang_up()

            async def completed() -> bool:
                found = await repo.get_call_unscoped(uuid.UUID(call["call_id"]))
                return found.status == "completed"

            await _until(completed, 30, "the call row completed")
        _kill(services[1], signal.SIGTERM)
    finally:
        for service in services:
            _kill(service)
        await repo.close()
        await emulator.close()
