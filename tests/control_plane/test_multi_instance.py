"""Many instances as one service (issue 19, item 5): two ``callagent serve`` processes and a
campaign worker on one PostgreSQL and one Redis, behind a load balancer, with the Telnyx
emulator and the provider emulators over real sockets.

Calls are placed through instance A; the balancer sends their media streams to B and alternates
the webhooks between A and B; a campaign is dialled by A's dialer and the worker together. B,
holding every stream, is SIGKILLed mid-conversation: A's recovery re-attaches the calls and
they finish there. Nothing may be lost or done twice: no number dialled twice (the emulator's
dial log), every call row ends, every turn recorded before the kill is still there unchanged,
and each call's turns are one row per index."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import unused_port

from bench.callee import EmulatorCallee
from bench.corpus.model import load_corpus
from bench.telnyx_emulator import DeliverySwitches, start_emulator
from control_plane.auth import issue_api_key
from control_plane.campaigns.store import CampaignStore
from control_plane.store import open_repository
from control_plane.streamauth import AUTH_HEADER

from .conftest import ENCRYPTION_KEY, LOOKUP_KEY, make_settings
from .test_campaigns_crash import _create_campaign, _kill, _spawn, _until, is_healthy

DIRECT_CALLS = 3
CONTACTS = 3
SCRIPT = "plain-01-order-status"
_FORWARDED = ("content-type", "telnyx-signature-ed25519", "telnyx-timestamp", "authorization")


@dataclass
class Balancer:
    """The load balancer in front of the instances (as an ingress would be): plain HTTP requests go
    round-robin, each to the next instance that accepts a connection; media WebSockets go to the
    first of ``stream_order`` that accepts, and are relayed frame by frame both ways."""

    backends: dict[str, str]
    stream_order: list[str]
    routed: list[tuple[str, str]] = field(default_factory=list)  # (backend, "METHOD path")
    _turn: itertools.count = field(default_factory=itertools.count)

    def app(self, http: aiohttp.ClientSession) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await self._relay(request, http)
            return await self._forward(request, http)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    async def _forward(self, request: web.Request, http: aiohttp.ClientSession) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
        names = list(self.backends)
        first = next(self._turn) % len(names)
        for name in names[first:] + names[:first]:
            try:
                async with http.request(request.method, self.backends[name] + request.rel_url.raw_path_qs,
                                        data=body, headers=headers) as response:
                    payload = await response.read()
                    self.routed.append((name, f"{request.method} {request.path}"))
                    return web.Response(status=response.status, body=payload,
                                        content_type=response.content_type)
            except aiohttp.ClientConnectionError:
                continue  # that instance is down: the next one
        return web.Response(status=502)

    async def _relay(self, request: web.Request, http: aiohttp.ClientSession) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() == AUTH_HEADER}
        for name in self.stream_order:
            url = self.backends[name].replace("http://", "ws://") + request.rel_url.raw_path_qs
            try:
                upstream = await http.ws_connect(url, headers=headers, autoping=True)
            except aiohttp.ClientError:
                continue
            self.routed.append((name, f"WS {request.path}"))
            downstream = web.WebSocketResponse()
            await downstream.prepare(request)

            async def pump(src: Any, dst: Any) -> None:
                async for message in src:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        await dst.send_str(message.data)
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        await dst.send_bytes(message.data)
                    else:
                        break

            tasks = [asyncio.create_task(pump(upstream, downstream)), asyncio.create_task(pump(downstream, upstream))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await upstream.close()
            await downstream.close()
            return downstream
        return web.Response(status=502)


def _env(settings: Any, emulator: Any, public_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALLAGENT_", "TELNYX_")) and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "CALLAGENT_STORE__SCHEMA_NAME": settings.store.schema_name, "CALLAGENT_STORE__POOL_MAX_SIZE": "4",
        "REDIS_URL": settings.redis_url.get_secret_value(), "CALLAGENT_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "CALLAGENT_ENCRYPTION_KEY": ENCRYPTION_KEY, "CALLAGENT_LOOKUP_HASH_KEY": LOOKUP_KEY,
        "CALLAGENT_TELNYX_API_KEY": emulator.api_key, "CALLAGENT_TELNYX_API_BASE": emulator.base_url,
        "CALLAGENT_TELNYX_PUBLIC_KEY": emulator.public_key_b64, "CALLAGENT_TELNYX_CONNECTION_ID": "1234567890",
        # Every instance names the balancer as the URL Telnyx reaches the service at.
        "CALLAGENT_SERVER__PUBLIC_URL": public_url, "CALLAGENT_PROVIDERS__MODE": "local",
        "CALLAGENT_API__CALL_STARTS_PER_MINUTE": "100000",
        "CALLAGENT_STREAMS__SWEEP_INTERVAL_S": "0.5", "CALLAGENT_STREAMS__LEASE_S": "3",
        "CALLAGENT_WEBHOOKS__POLL_INTERVAL_S": "0.1", "CALLAGENT_WEBHOOKS__CLAIM_LEASE_S": "3",
        "CALLAGENT_CAMPAIGNS__LEASE_S": "2", "CALLAGENT_CAMPAIGNS__SWEEP_INTERVAL_S": "0.2",
        "CALLAGENT_CAMPAIGNS__POLL_INTERVAL_S": "0.1", "CALLAGENT_CAMPAIGNS__OUTCOME_GRACE_S": "0.5",
        "CALLAGENT_LOG_LEVEL": os.environ.get("CALLAGENT_TEST_CRASH_LOG_LEVEL", "WARNING"), "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


async def test_two_instances_and_a_worker_lose_and_repeat_nothing_when_one_is_killed(pg_schema, redis_prefix,
                                                                                    tmp_path):
    script = next(s for s in load_corpus() if s.name == SCRIPT)
    # Webhooks that find no instance up are retried, as Telnyx does.
    emulator = await start_emulator(callee_factory=EmulatorCallee(lambda call: script),
                                    switches=DeliverySwitches(max_attempts=12, backoff_s=0.2))
    settings = make_settings(tmp_path, backend="postgres", pg_schema=pg_schema, redis_prefix=redis_prefix)
    ports = {"A": unused_port(), "B": unused_port()}
    backends = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    balancer = Balancer(backends, stream_order=["B", "A"])
    processes: dict[str, Any] = {}
    repo = await open_repository(settings)
    lb_runner: web.AppRunner | None = None
    try:
        org = await repo.create_organisation("multi")
        _, secret = await issue_api_key(repo, org.id, "multi")
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession() as http:
            lb_port = unused_port()
            lb_runner = web.AppRunner(balancer.app(http), access_log=None)
            await lb_runner.setup()
            await web.TCPSite(lb_runner, "127.0.0.1", lb_port).start()
            public = f"http://127.0.0.1:{lb_port}"
            env = _env(settings, emulator, public)
            processes["A"] = _spawn(["-m", "callagent", "serve", "--port", str(ports["A"])], env, tmp_path / "a.log")
            processes["B"] = _spawn(["-m", "callagent", "serve", "--port", str(ports["B"])],
                                    {**env, "CALLAGENT_CAMPAIGNS__DIALER": "false"}, tmp_path / "b.log")
            for name in ("A", "B"):
                await _until(lambda name=name: is_healthy(http, backends[name]), 60, f"instance {name} up")
            processes["worker"] = _spawn(["-m", "control_plane.campaigns.worker"], env, tmp_path / "worker.log")

            a = backends["A"]
            call_ids: list[str] = []
            for i in range(DIRECT_CALLS):
                body = {"to": f"+1415555{i:04d}", "from": "+14155550100",
                        "agent_config": {"personality": "friendly", "language": "en", "first_message": "Hello!"}}
                async with http.post(f"{a}/api/calls/start", json=body, headers=headers) as response:
                    assert response.status == 201, await response.text()
                    call_ids.append((await response.json())["call_id"])
            numbers = [f"+1646555{i:04d}" for i in range(CONTACTS)]
            campaign_id = await _create_campaign(http, a, headers, numbers)
            store = CampaignStore(repo)  # type: ignore[arg-type]

            async def campaign_calls() -> list[str]:
                contacts = await store.contacts(uuid.UUID(campaign_id))
                return [str(c.last_call_id) for c in contacts if c.last_call_id is not None]

            async def turns_of(call_id: str) -> list[Any]:
                return await repo.list_turns(uuid.UUID(call_id))

            async def every_call_has_turns() -> bool:
                ids = call_ids + await campaign_calls()
                return len(ids) == DIRECT_CALLS + CONTACTS and all([await turns_of(c) for c in ids])

            await _until(every_call_has_turns, 60, "every call talking (a turn recorded)")
            all_ids = call_ids + await campaign_calls()
            before = {c: [(t.index, t.caller_text, t.agent_text) for t in await turns_of(c)] for c in all_ids}
            streams_before = [name for name, what in balancer.routed if what.startswith("WS")]
            assert streams_before and set(streams_before) == {"B"}, balancer.routed
            _kill(processes["B"])  # SIGKILL: the instance holding every stream

            async def all_ended() -> bool:
                rows = [await repo.get_call_unscoped(uuid.UUID(c)) for c in all_ids]
                return all(row is not None and row.terminal for row in rows)

            await _until(all_ended, 90, "every call ended")

            async def campaign_done() -> bool:
                async with http.get(f"{a}/api/campaigns/{campaign_id}", headers=headers) as response:
                    return (await response.json())["status"] == "completed"

            await _until(campaign_done, 30, "the campaign completed")

        # 0 duplicate dials: each number dialled once, and once only.
        assert emulator.dialled_more_than_once() == {}
        dialled = [e.to for e in emulator.dial_log]
        assert sorted(dialled) == sorted([f"+1415555{i:04d}" for i in range(DIRECT_CALLS)] + numbers)
        # 0 lost records: every call completed; turns recorded before the kill are still there, as they were.
        for call_id in all_ids:
            row = await repo.get_call_unscoped(uuid.UUID(call_id))
            assert row.status == "completed", (call_id, row.status, row.outcome)
            after = [(t.index, t.caller_text, t.agent_text) for t in await turns_of(call_id)]
            assert after[:len(before[call_id])] == before[call_id], (call_id, before[call_id], after)
            assert [t[0] for t in after] == list(range(len(after)))  # one row per turn, none missing
            assert len(after) > len(before[call_id])  # the conversation went on after the kill
        contacts = await store.contacts(uuid.UUID(campaign_id))
        assert {c.status for c in contacts} == {"completed"} and all(c.attempts == 1 for c in contacts)
        # The streams moved to A with the kill; webhooks reached both instances.
        streams = [name for name, what in balancer.routed if what.startswith("WS")]
        assert streams[len(streams_before):] and set(streams[len(streams_before):]) == {"A"}
        hooks = {name for name, what in balancer.routed if what == "POST /webhook/telnyx"}
        assert hooks == {"A", "B"}
    finally:
        for process in processes.values():
            _kill(process)
        if lb_runner is not None:
            await lb_runner.cleanup()
        await repo.close()
        await emulator.close()
