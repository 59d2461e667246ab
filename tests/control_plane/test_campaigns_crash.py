"""Crash safety, for real: PostgreSQL, Redis, the Telnyx emulator over sockets, and processes killed
with SIGKILL in the middle of a campaign. Every contact must end in exactly one terminal state and
the emulator's own dial log must show no number dialled twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer, unused_port

from bench.telnyx_emulator import DeliverySwitches, RunningEmulator, start_emulator
from control_plane.app import CONTROL_PLANE_KEY, create_app
from control_plane.auth import issue_api_key
from control_plane.campaigns.store import CampaignStore
from control_plane.store import open_repository
from tests.fixtures.waiting import eventually

from .conftest import ENCRYPTION_KEY, LOOKUP_KEY, PG_URL, REDIS_URL, make_settings
from .test_campaigns_dialer import AGENT, QuietCallee

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # processes killed mid-campaign, PostgreSQL, Redis and the emulator

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 150


def _env(settings: Any, emulator: RunningEmulator, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALLAGENT_", "TELNYX_")) and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "CALLAGENT_DATABASE_URL": PG_URL, "CALLAGENT_STORE__SCHEMA_NAME": settings.store.schema_name,
        "CALLAGENT_STORE__POOL_MAX_SIZE": "4", "CALLAGENT_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CALLAGENT_LOOKUP_HASH_KEY": LOOKUP_KEY, "CALLAGENT_REDIS_URL": REDIS_URL,
        "CALLAGENT_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "CALLAGENT_TELNYX_API_KEY": emulator.api_key, "CALLAGENT_TELNYX_API_BASE": emulator.base_url,
        "CALLAGENT_TELNYX_PUBLIC_KEY": emulator.public_key_b64, "CALLAGENT_TELNYX_CONNECTION_ID": "1234567890",
        "CALLAGENT_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}", "CALLAGENT_SERVER__PORT": str(port),
        "CALLAGENT_API__CALL_STARTS_PER_MINUTE": "100000",
        # A dial's lease outlasts its request (dial_timeout_s + 1): 2.5 s, under the 5 s the webhooks
        # are held back, so the taking-over worker must re-send what the killed one placed.
        "CALLAGENT_CAMPAIGNS__LEASE_S": "2", "CALLAGENT_CAMPAIGNS__DIAL_TIMEOUT_S": "1.5",
        "CALLAGENT_CAMPAIGNS__SWEEP_INTERVAL_S": "0.2",
        "CALLAGENT_CAMPAIGNS__POLL_INTERVAL_S": "0.1", "CALLAGENT_CAMPAIGNS__OUTCOME_GRACE_S": "0.5",
        "CALLAGENT_WEBHOOKS__POLL_INTERVAL_S": "0.1", "CALLAGENT_WEBHOOKS__CLAIM_LEASE_S": "3",
        "CALLAGENT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def _kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)



async def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """``eventually`` with positional arguments, for the other crash tests that import it."""
    return await eventually(check, what=what, timeout=timeout)


async def _check_exactly_once(emulator: RunningEmulator, store: CampaignStore, campaign_id: Any,
                              numbers: list[str]) -> None:
    contacts = await store.contacts(campaign_id)
    assert len(contacts) == len(numbers)
    assert {c.status for c in contacts} == {"completed"}, {c.phone: c.status for c in contacts if
                                                           c.status != "completed"}
    assert all(c.attempts == 1 for c in contacts)
    assert emulator.dialled_more_than_once() == {}
    log = emulator.dial_log
    assert len(log) == len(numbers) and {e.to for e in log} == set(numbers)
    by_number = {e.to: e for e in log}
    repo = store.repo
    for contact in contacts:
        call = await repo.get_call_unscoped(contact.last_call_id)
        entry = by_number[contact.phone]
        assert call is not None and entry.command_id == str(call.id)
        assert call.call_control_id == entry.call_control_id and call.terminal


async def _create_campaign(http: Any, base: str, headers: dict[str, str], numbers: list[str]) -> str:
    body = {"name": "crash", "agent_config": AGENT, "caller_numbers": ["+14155550100", "+14155550101"],
            "calls_per_minute": 1200, "max_concurrent_calls": 50, "retry": {"max_attempts": 1},
            # No machine detection: a held call waits for its verdict (control_plane.machines), which
            # lengthens every call; this test is about restarts, tests/control_plane/test_machines.py about AMD.
            "answering_machine_detection": False}
    async with http.post(f"{base}/api/campaigns", json=body, headers=headers) as response:
        assert response.status == 201, await response.text()
        campaign_id = (await response.json())["id"]
    async with http.post(f"{base}/api/campaigns/{campaign_id}/contacts", data="phone\n" + "\n".join(numbers),
                         headers={**headers, "Content-Type": "text/csv"}) as response:
        assert (await response.json())["accepted"] == len(numbers)
    async with http.post(f"{base}/api/campaigns/{campaign_id}/start", headers=headers) as response:
        assert response.status == 200, await response.text()
    return campaign_id


async def _campaign(http: Any, base: str, headers: dict[str, str], campaign_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/api/campaigns/{campaign_id}", headers=headers) as response:
        return await response.json()


async def test_sigkill_a_dialer_worker_mid_campaign_then_another_finishes_it(pg_schema, redis_prefix, tmp_path):
    emulator = await start_emulator(time_scale=0.05, callee_factory=lambda call: QuietCallee(0.5))
    port = unused_port()
    settings = make_settings(
        tmp_path, backend="postgres", pg_schema=pg_schema, redis_prefix=redis_prefix,
        telnyx_api_key=emulator.api_key, telnyx_api_base=emulator.base_url, telnyx_public_key=emulator.public_key_b64,
        server={"public_url": f"http://127.0.0.1:{port}"}, webhooks={"poll_interval_s": 0.05},
        api={"call_starts_per_minute": 100_000}, campaigns={"dialer": False, "outcome_grace_s": 0.5})
    env = _env(settings, emulator, port)
    workers: list[subprocess.Popen[bytes]] = []
    app = create_app(settings)  # receives the webhooks; its own dialer is off: the workers dial
    try:
        async with TestClient(TestServer(app, port=port)) as client:
            cp = app[CONTROL_PLANE_KEY]
            repo = await cp.repository()
            org = await repo.create_organisation("crash")
            _, secret = await issue_api_key(repo, org.id, "crash")
            headers = {"Authorization": f"Bearer {secret}"}
            numbers = [f"+1646555{i:04d}" for i in range(CONTACTS)]
            base = str(client.make_url("")).rstrip("/")
            campaign_id = await _create_campaign(client.session, base, headers, numbers)

            # Dials take 0.4 s to answer: at any moment several are placed but not yet recorded.
            emulator.faults.slow_next(1_000_000, delay_s=0.4, match="/v2/calls")
            workers.append(_spawn(["-m", "control_plane.campaigns.worker"], env, tmp_path / "worker-a.log"))
            await eventually(lambda: len(emulator.dial_log) >= 40, timeout=60, what="worker A dialling")
            emulator.switches.delay_s = 5.0  # and their webhooks are late: only the command_id can tell
            await asyncio.sleep(0.45)  # real processes: let worker A get dials in flight before the kill
            killed_at = time.time()
            _kill(workers[0])  # SIGKILL: leases held, dials placed but unrecorded
            emulator.switches.delay_s = 0.0
            at_kill = await _campaign(client.session, base, headers, campaign_id)
            assert at_kill["pending"] > 0 and at_kill["status"] == "running"
            await asyncio.sleep(0.5)  # A's last responses are out of the way: later dial requests are B's
            b_started = time.time()
            workers.append(_spawn(["-m", "control_plane.campaigns.worker"], env, tmp_path / "worker-b.log"))

            async def finished() -> Any:
                body = await _campaign(client.session, base, headers, campaign_id)
                return body if body["status"] == "completed" else None

            body = await eventually(finished, timeout=90, what="campaign completed by worker B")
            _kill(workers[1], signal.SIGTERM)
            assert workers[1].returncode == 0
            assert (body["completed_calls"], body["in_progress"], body["calls_placed"]) == (CONTACTS, 0, CONTACTS)
            store = await cp.campaigns.store()
            await _check_exactly_once(emulator, store, uuid.UUID(campaign_id), numbers)
            # B re-sent dials that A had placed and not recorded; the emulator placed each of them once.
            placed_by_a = {e.command_id for e in emulator.dial_log if e.at < killed_at}
            resent_by_b = {r.command_id for r in emulator.requests
                           if r.method == "POST" and r.path == "/v2/calls" and r.at > b_started}
            assert placed_by_a & resent_by_b
    finally:
        for worker in workers:
            _kill(worker)
        await emulator.close()


def serve() -> None:
    """The whole service in a process of its own (the control plane app with its dialer)."""
    from control_plane.settings import Settings

    async def main() -> None:
        settings = Settings()
        runner = aiohttp.web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        await aiohttp.web.TCPSite(runner, "127.0.0.1", settings.server.port).start()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


async def test_restarting_the_whole_service_mid_campaign_loses_and_repeats_nothing(pg_schema, redis_prefix, tmp_path):
    # Webhooks sent while the service is down are retried (as Telnyx does) until it is back.
    emulator = await start_emulator(time_scale=0.05, callee_factory=lambda call: QuietCallee(0.5),
                                    switches=DeliverySwitches(max_attempts=12, backoff_s=0.2))
    port = unused_port()
    settings = make_settings(tmp_path, backend="postgres", pg_schema=pg_schema, redis_prefix=redis_prefix)
    env = _env(settings, emulator, port)
    services: list[subprocess.Popen[bytes]] = []
    repo = await open_repository(settings)
    base = f"http://127.0.0.1:{port}"
    try:
        org = await repo.create_organisation("restart")
        _, secret = await issue_api_key(repo, org.id, "restart")
        headers = {"Authorization": f"Bearer {secret}"}
        numbers = [f"+1718555{i:04d}" for i in range(CONTACTS)]
        serve_args = ["-c", "from tests.control_plane.test_campaigns_crash import serve; serve()"]
        async with aiohttp.ClientSession() as http:
            def healthy() -> Any:
                return is_healthy(http, base)

            emulator.faults.slow_next(1_000_000, delay_s=0.4, match="/v2/calls")  # dials in flight at the kill
            services.append(_spawn(serve_args, env, tmp_path / "service-1.log"))
            await eventually(healthy, timeout=30, what="service up")
            campaign_id = await _create_campaign(http, base, headers, numbers)
            await eventually(lambda: len(emulator.dial_log) >= 40, timeout=60, what="service dialling")
            _kill(services[0])  # the whole service: dialer, webhook worker, API
            services.append(_spawn(serve_args, env, tmp_path / "service-2.log"))
            await eventually(healthy, timeout=30, what="service up again")

            async def finished() -> Any:
                body = await _campaign(http, base, headers, campaign_id)
                return body if body["status"] == "completed" else None

            body = await eventually(finished, timeout=90, what="campaign completed after the restart")
            assert (body["completed_calls"], body["in_progress"], body["calls_placed"]) == (CONTACTS, 0, CONTACTS)
        _kill(services[1], signal.SIGTERM)
        await _check_exactly_once(emulator, CampaignStore(repo), uuid.UUID(campaign_id), numbers)  # type: ignore[arg-type]
    finally:
        for service in services:
            _kill(service)
        await repo.close()
        await emulator.close()


async def is_healthy(http: aiohttp.ClientSession, base: str) -> bool:
    """Whether the service at ``base`` answers its health check (not yet listening: False)."""
    with contextlib.suppress(aiohttp.ClientError):
        async with http.get(f"{base}/healthz") as response:
            return response.status == 200
    return False
