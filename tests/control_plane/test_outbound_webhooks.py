"""Event webhooks to the organisation's app: the outbox written with its change, delivery through a
flaky real HTTP receiver in virtual time (nothing lost, order per call, Standard Webhooks
signatures verified with the ``standardwebhooks`` package), rotation, replay, egress, isolation."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from control_plane.campaigns.store import CampaignStore
from control_plane.services import ControlPlane
from control_plane.settings import OutboundWebhookSettings, Settings
from control_plane.store import Call, Turn, utcnow
from control_plane.store.outbox import SqlOutboxStore
from control_plane.webhooks.delivery import DeliveryWorker, Sender
from control_plane.webhooks.events import EVENT_TYPES

from .conftest import PG_URL, _pg_admin, make_settings
from .fakes import harness
from .helpers import add_contact, make_campaign

CALL_EVENTS = ["call.started", "call.answered", "call.turn", "call.turn", "call.turn", "call.summary",
               "call.ended"]


@pytest.fixture(params=["sqlite", "postgres"])
def own_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings with a PostgreSQL schema of this test's own: the delivery worker claims across
    organisations, so another test's leftovers must not be in its tables."""
    overrides: dict[str, Any] = {"outbound_webhooks": {"enabled": False, "allow_private_addresses": True}}
    if request.param == "sqlite":
        yield make_settings(tmp_path, **overrides)
        return
    schema = "wh_test_" + secrets.token_hex(6)
    try:
        asyncio.run(_pg_admin(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL is unreachable at {PG_URL}: {exc}", pytrace=False)
    try:
        yield make_settings(tmp_path, backend="postgres", pg_schema=schema, **overrides)
    finally:
        asyncio.run(_pg_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


class VirtualClock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Receiver:
    """A real aiohttp server standing in for the customer's app: verifies every request with the
    standardwebhooks package, fails ``fail_rate`` of them with a 500, and can be taken down."""

    secret: str
    fail_rate: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    accepted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: int = 0
    bad_signatures: int = 0
    signature_counts: list[int] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        self.signature_counts.append(len(request.headers.get("webhook-signature", "").split(" ")))
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=400)
        if self.rng.random() < self.fail_rate:
            return web.Response(status=500)
        self.accepted.append((request.headers["webhook-id"], payload))
        return web.Response(status=204)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        if self._runner is None:
            app = web.Application()
            app.router.add_post("/hooks", self.handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await self._site.start()
        if not self.port:
            self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def down(self) -> None:
        """Gone: the listening socket and the kept-alive connections too."""
        assert self._runner is not None
        await self._runner.cleanup()
        self._runner = self._site = None

    @property
    def up(self) -> bool:
        return self._site is not None

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@asynccontextmanager
async def control_plane(settings: Settings) -> AsyncIterator[tuple[ControlPlane, SqlOutboxStore]]:
    cp = ControlPlane(settings)
    try:
        await cp.repository()
        assert cp.outbound_webhooks.store is not None
        yield cp, cp.outbound_webhooks.store
    finally:
        while _SENDERS:
            await _SENDERS.pop().close()
        await cp.close()


def _call(org_id: UUID, **extra: Any) -> Call:
    now = utcnow()
    return Call(**{"id": uuid4(), "org_id": org_id, "direction": "outbound", "to_number": "+14155550101",
                   "from_number": "+14155550100", "status": "queued", "created_at": now, "updated_at": now,
                   **extra})


async def _live_call(repo: Any, org_id: UUID) -> Call:
    """One call through its life: 7 events (started, answered, 3 turns, summary, ended)."""
    call = await repo.create_call(_call(org_id))
    await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "answered", "answered_at": utcnow()}))
    for index in range(3):
        await repo.upsert_turn(Turn(call_id=call.id, org_id=org_id, index=index, caller_text=f"caller {index}",
                                    agent_text=f"agent {index}", latency={"turn_ms": 300 + index},
                                    created_at=utcnow()))
    await repo.update_call(call.id, lambda c: c.model_copy(update={"summary": "done", "outcome": {"ok": True}}))
    await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "completed", "ended_at": utcnow()}))
    return call


_SENDERS: list[Sender] = []


def _worker(store: SqlOutboxStore, clock: VirtualClock, settings: OutboundWebhookSettings | None = None
            ) -> DeliveryWorker:
    settings = settings or OutboundWebhookSettings(allow_private_addresses=True)
    sender = Sender(settings.policy(), timeout_s=5)
    _SENDERS.append(sender)
    return DeliveryWorker(store, sender, settings, clock=clock, rng=random.Random(3))


async def _drain(worker: DeliveryWorker, store: SqlOutboxStore, clock: VirtualClock,
                 receiver: Receiver | None = None, outage: tuple[datetime, datetime] | None = None,
                 max_rounds: int | None = None) -> int:
    """Rounds until nothing is pending (or ``max_rounds``), jumping the clock to the next due
    delivery and taking the receiver down for ``outage`` (virtual time)."""
    rounds = 0
    while max_rounds is None or rounds < max_rounds:
        if receiver is not None and outage is not None:
            if outage[0] <= clock.now < outage[1] and receiver.up:
                await receiver.down()
            elif clock.now >= outage[1] and not receiver.up:
                await receiver.start()
        rounds += 1
        if await worker.run_once():
            continue
        due = await store.next_due()
        if due is None:
            return rounds
        # A second past the next due delivery, like a worker polling: retries due close together
        # go in one round (fewer rounds, fewer commits; virtual time, so nothing waits).
        target = max(clock.now, due + timedelta(seconds=1))
        if outage is not None:  # stop at the outage's edges so it is neither skipped nor stretched
            for edge in outage:
                if clock.now < edge < target:
                    target = edge
        clock.now = target + timedelta(microseconds=1)
        assert rounds < 20_000, "the clock should only move to deliveries that are due"
    return rounds


async def _org_endpoint(repo: Any, store: SqlOutboxStore, url: str, types: list[str] | None = None,
                        secret: str = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") -> tuple[UUID, str]:
    org = await repo.create_organisation("org " + secrets.token_hex(3))
    await store.create_endpoint(org.id, url=url, event_types=types or list(EVENT_TYPES), secret=secret)
    return org.id, secret


# -- the done-when test --------------------------------------------------------------------------


async def test_flaky_receiver_gets_every_event_of_100_calls_in_order(own_settings):
    from control_plane.webhooks.signing import new_secret

    secret = new_secret()
    receiver = Receiver(secret, fail_rate=0.5)
    await receiver.start()
    clock = VirtualClock()
    try:
        async with control_plane(own_settings) as (cp, store):
            repo = await cp.repository()
            org_id, _ = await _org_endpoint(repo, store, receiver.url, secret=secret)
            worker = _worker(store, clock)
            calls: list[Call] = []
            for wave in range(4):
                calls += [await _live_call(repo, org_id) for _ in range(25)]
                if wave == 1:  # the receiver goes away for 60 s with these in flight
                    outage = (clock.now, clock.now + timedelta(seconds=60))
                    await _drain(worker, store, clock, receiver, outage, max_rounds=3)
                    assert not receiver.up
                    refused_before = receiver.requests
                else:
                    await _drain(worker, store, clock, receiver, outage if wave > 1 else None, max_rounds=3)
            await _drain(worker, store, clock, receiver, outage)
            assert receiver.up and receiver.requests > refused_before

            async with repo.connection() as conn:
                rows = await conn.fetch("SELECT d.message_id AS id, d.order_key AS k, d.state AS state"
                                        " FROM webhook_deliveries d ORDER BY d.id")
                attempts = await conn.fetch("SELECT status_code FROM webhook_attempts")
    finally:
        await receiver.close()

    assert len(rows) == 100 * len(CALL_EVENTS)
    assert {r["state"] for r in rows} == {"delivered"}
    # 0 lost, none accepted twice, every signature verified by standardwebhooks.
    accepted_ids = [message_id for message_id, _ in receiver.accepted]
    assert sorted(accepted_ids) == sorted(r["id"] for r in rows)
    assert len(set(accepted_ids)) == len(accepted_ids)
    assert receiver.bad_signatures == 0
    # The receiver really was flaky and really was down: failed attempts and refused connections.
    statuses = [a["status_code"] for a in attempts]
    assert statuses.count(500) > 100 and None in statuses
    # Order per call: as written, and as the call's life went.
    expected: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        expected[r["k"]].append(r["id"])
    got: dict[str, list[str]] = defaultdict(list)
    turns: dict[str, list[int]] = defaultdict(list)
    for message_id, payload in receiver.accepted:
        got[payload["data"]["call_id"]].append(message_id)
        if payload["type"] == "call.turn":
            turns[payload["data"]["call_id"]].append(payload["data"]["index"])
        else:
            assert payload["type"] in CALL_EVENTS
    assert got == expected
    assert all(t == [0, 1, 2] for t in turns.values()) and len(turns) == 100
    by_id = {message_id: payload for message_id, payload in receiver.accepted}
    for call in calls:
        assert [by_id[m]["type"] for m in got[str(call.id)]] == CALL_EVENTS


# -- the outbox goes with its change ---------------------------------------------------------------


async def test_outbox_rows_are_written_in_the_transaction_of_the_change(own_settings):
    async with control_plane(own_settings) as (cp, store):
        repo = await cp.repository()
        org_id, _ = await _org_endpoint(repo, store, "https://hooks.example.com/in",
                                        types=["call.answered", "call.ended"])
        quiet = await repo.create_organisation("no endpoints")
        call = await repo.create_call(_call(org_id))
        await repo.create_call(_call(quiet.id))  # an organisation without endpoints writes nothing

        class Boom(Exception):
            pass

        def explode(_: Call) -> Call:
            raise Boom

        with pytest.raises(Boom):
            await repo.update_call(call.id, explode)

        # A write that fails after its event was queued leaves neither (the transaction rolled back).
        real_execute_hook = repo.hooks.listener

        class FailingAfterEnqueue:
            async def call_changed(self, conn: Any, before: Call | None, after: Call) -> None:
                await real_execute_hook.call_changed(conn, before, after)
                raise Boom

        repo.hooks.listener = FailingAfterEnqueue()
        with pytest.raises(Boom):
            await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "answered",
                                                                           "answered_at": utcnow()}))
        repo.hooks.listener = real_execute_hook
        assert (await repo.get_call(org_id, call.id)).status == "queued"
        assert await store.list_deliveries(org_id) == []

        await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "answered", "answered_at": utcnow()}))
        await repo.upsert_turn(Turn(call_id=call.id, org_id=org_id, index=0, caller_text="hi", created_at=utcnow()))
        await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "completed", "ended_at": utcnow()}))
        deliveries = await store.list_deliveries(org_id)
        assert [d.event_type for d in reversed(deliveries)] == ["call.answered", "call.ended"]
        assert await store.list_deliveries(quiet.id) == []
        async with repo.connection() as conn:
            stored = await conn.fetch("SELECT payload_enc FROM webhook_messages")
        # Sealed at rest like the call records: the numbers are not readable in the table.
        assert stored and not any("+1415" in r["payload_enc"] for r in stored)


# -- rotation, replay, egress --------------------------------------------------------------------------


async def test_rotation_signs_with_both_secrets_during_the_grace_period(own_settings):
    from control_plane.webhooks.signing import new_secret

    old = new_secret()
    receiver = Receiver(old)
    await receiver.start()
    clock = VirtualClock()
    try:
        async with control_plane(own_settings) as (cp, store):
            repo = await cp.repository()
            org_id, _ = await _org_endpoint(repo, store, receiver.url, types=["call.started"], secret=old)
            endpoint = (await store.list_endpoints(org_id))[0]
            rotated = await store.rotate_secret(org_id, endpoint.id, new_secret(), grace_s=3600)
            assert rotated is not None and rotated.secret != old and rotated.previous_secret == old
            worker = _worker(store, clock)
            await repo.create_call(_call(org_id))
            await _drain(worker, store, clock)
            # Verified with the old secret (the receiver has not switched yet) and the new one.
            assert len(receiver.accepted) == 1 and receiver.signature_counts == [2]
            switched = Receiver(rotated.secret)
            switched.port = receiver.port
            await receiver.close()
            await switched.start()
            receiver = switched
            clock.now += timedelta(seconds=3601)  # grace over: only the new secret signs
            await repo.create_call(_call(org_id))
            await _drain(worker, store, clock)
            assert len(receiver.accepted) == 1 and receiver.signature_counts == [1] and receiver.bad_signatures == 0
    finally:
        await receiver.close()


async def test_endpoints_resolving_to_internal_addresses_are_refused_at_connect_time(own_settings):
    async with control_plane(own_settings) as (cp, store):
        repo = await cp.repository()
        org_id, _ = await _org_endpoint(repo, store, "http://localhost:9/hooks", types=["call.started"])
        await repo.create_call(_call(org_id))
        clock = VirtualClock()
        worker = _worker(store, clock, OutboundWebhookSettings())  # the default: public addresses only
        assert await worker.run_once() == 1
        delivery = (await store.list_deliveries(org_id))[0]
        assert delivery.state == "pending" and delivery.last_status is None
        assert "loopback" in (delivery.last_error or "")
        # Past max_age_s it is given up, and the log keeps every attempt.
        clock.now += timedelta(days=2)
        await worker.run_once()
        delivery, attempts = await store.get_delivery(org_id, delivery.id)
        assert delivery.state == "failed" and len(attempts) == 2


# -- REST: endpoints, deliveries, replay, isolation --------------------------------------------------


async def test_rest_endpoints_deliveries_and_replay_are_per_organisation(own_settings):
    receiver = Receiver("whsec_placeholder")
    await receiver.start()
    try:
        async with harness(own_settings) as h:
            org_a, headers_a = await h.org("A")
            _, headers_b = await h.org("B")
            bad = [({"url": "ftp://example.com/x"}, "invalid_url"),
                   ({"url": "https://example.com", "event_types": ["call.exploded"]}, "validation_error"),
                   ({"url": "http://169.254.169.254/latest"}, "invalid_url"),  # metadata: never, even locally
                   ({"url": "https://example.com", "event_types": []}, "validation_error")]
            for body, code in bad:
                response = await h.client.post("/api/webhooks/endpoints", json=body, headers=headers_a)
                assert response.status == 400 and (await response.json())["error"]["code"] == code, body
            created = await h.client.post("/api/webhooks/endpoints", json={"url": receiver.url}, headers=headers_a)
            assert created.status == 201
            endpoint = await created.json()
            assert endpoint["secret"].startswith("whsec_") and set(endpoint["event_types"]) == set(EVENT_TYPES)
            receiver.secret = endpoint["secret"]
            path = f"/api/webhooks/endpoints/{endpoint['id']}"

            listed = await (await h.client.get("/api/webhooks/endpoints", headers=headers_a)).json()
            assert [e["id"] for e in listed["data"]] == [endpoint["id"]] and "secret" not in listed["data"][0]
            # Organisation B sees nothing of A's and can change nothing.
            assert (await (await h.client.get("/api/webhooks/endpoints", headers=headers_b)).json())["data"] == []
            for method in ("get", "patch", "delete"):
                kwargs = {"json": {"enabled": False}} if method == "patch" else {}
                assert (await getattr(h.client, method)(path, headers=headers_b, **kwargs)).status == 404
            assert (await h.client.post(path + "/rotate-secret", headers=headers_b)).status == 404

            patched = await h.client.patch(path, json={"event_types": ["call.started"], "description": "crm"},
                                           headers=headers_a)
            assert patched.status == 200 and (await patched.json())["event_types"] == ["call.started"]

            repo = await h.cp.repository()
            store = h.cp.outbound_webhooks.store
            await repo.create_call(_call(org_a.id))
            clock = VirtualClock()
            await _drain(_worker(store, clock), store, clock)
            assert len(receiver.accepted) == 1

            deliveries = await (await h.client.get("/api/webhooks/deliveries", headers=headers_a)).json()
            assert len(deliveries["data"]) == 1 and deliveries["data"][0]["state"] == "delivered"
            delivery = deliveries["data"][0]
            detail = await (await h.client.get(f"/api/webhooks/deliveries/{delivery['id']}",
                                               headers=headers_a)).json()
            assert [a["status_code"] for a in detail["attempt_log"]] == [204]
            assert detail["attempt_log"][0]["latency_ms"] >= 0
            assert (await (await h.client.get("/api/webhooks/deliveries", headers=headers_b)).json())["data"] == []
            assert (await h.client.get(f"/api/webhooks/deliveries/{delivery['id']}",
                                       headers=headers_b)).status == 404

            # Replay: B cannot touch A's event; A gets it again with the same webhook-id.
            one = {"message_id": delivery["message_id"]}
            assert (await h.client.post("/api/webhooks/replay", json=one, headers=headers_b)).status == 404
            since = (utcnow() - timedelta(hours=1)).isoformat()
            until = (utcnow() + timedelta(hours=1)).isoformat()
            b_range = await h.client.post("/api/webhooks/replay", json={"since": since, "until": until},
                                          headers=headers_b)
            assert b_range.status == 202 and (await b_range.json())["queued"] == 0
            replayed = await h.client.post("/api/webhooks/replay", json=one, headers=headers_a)
            assert replayed.status == 202 and (await replayed.json())["queued"] == 1
            ranged = await h.client.post("/api/webhooks/replay", json={"since": since, "until": until},
                                         headers=headers_a)
            assert (await ranged.json())["queued"] == 0  # already waiting for that endpoint: not doubled
            neither = await h.client.post("/api/webhooks/replay", json={}, headers=headers_a)
            assert neither.status == 400
            await _drain(_worker(store, clock), store, clock)
            ranged = await h.client.post("/api/webhooks/replay", json={"since": since, "until": until},
                                         headers=headers_a)
            assert (await ranged.json())["queued"] == 1
            await _drain(_worker(store, clock), store, clock)
            assert [m for m, _ in receiver.accepted] == [delivery["message_id"]] * 3

            rotated = await (await h.client.post(path + "/rotate-secret", headers=headers_a)).json()
            assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_expires_at"]
            assert (await h.client.delete(path, headers=headers_a)).status == 200
            assert (await h.client.get(path, headers=headers_a)).status == 404
    finally:
        await receiver.close()


async def test_campaign_progress_and_completion_events(own_settings):
    async with control_plane(own_settings) as (cp, store):
        repo = await cp.repository()
        org_id, _ = await _org_endpoint(repo, store, "https://hooks.example.com/c",
                                        types=["campaign.progress", "campaign.completed"])
        campaign = await make_campaign(repo, org_id, "spring")
        await add_contact(repo, org_id, campaign.id, "+14155550111")
        async with repo.transaction() as conn:
            await conn.execute("UPDATE campaigns SET status = 'running' WHERE id = $1", campaign.id)
            await conn.execute("UPDATE campaign_contacts SET status = 'completed' WHERE campaign_id = $1",
                               campaign.id)
        assert await CampaignStore(repo).maybe_complete(campaign.id)
        deliveries = await store.list_deliveries(org_id)
        assert [d.event_type for d in deliveries] == ["campaign.completed"]
        assert deliveries[0].order_key == str(campaign.id)


async def test_the_server_delivers_in_the_background_from_an_api_started_call(own_settings):
    """The real path: POST /api/calls/start writes the call, its outbox row goes with it, and the
    control plane's own worker (real clock) sends it while the API keeps serving."""
    settings = own_settings.model_copy(update={
        "outbound_webhooks": own_settings.outbound_webhooks.model_copy(update={"enabled": True})})
    receiver = Receiver("whsec_placeholder")
    arrived = asyncio.Event()
    handle = receiver.handle

    async def signalling(request: web.Request) -> web.Response:
        response = await handle(request)
        arrived.set()
        return response

    receiver.handle = signalling  # type: ignore[method-assign]
    await receiver.start()
    try:
        async with harness(settings) as h:
            _, headers = await h.org("A")
            created = await (await h.client.post("/api/webhooks/endpoints",
                                                 json={"url": receiver.url, "event_types": ["call.started"]},
                                                 headers=headers)).json()
            receiver.secret = created["secret"]
            started = await h.client.post("/api/calls/start", json={"to": "+14155550123", "from": "+14155550100"},
                                          headers=headers)
            assert started.status == 201, await started.text()
            call_id = (await started.json())["call_id"]
            await asyncio.wait_for(arrived.wait(), 30)  # a bound against hanging, not a speed check
            assert receiver.bad_signatures == 0
            [(_, payload)] = receiver.accepted
            assert payload["type"] == "call.started" and payload["data"]["call_id"] == call_id
            assert payload["data"]["to"] == "+14155550123"
    finally:
        await receiver.close()


async def test_two_instances_never_claim_the_same_delivery(tmp_path):
    """PostgreSQL: two processes' stores claiming at once (FOR UPDATE SKIP LOCKED) split the heads
    between them; a call's second event is claimable only once its first is settled."""
    schema = "wh_test_" + secrets.token_hex(6)
    await _pg_admin(f'CREATE SCHEMA "{schema}"')
    try:
        settings = make_settings(tmp_path, backend="postgres", pg_schema=schema,
                                 outbound_webhooks={"enabled": False})
        async with control_plane(settings) as (cp_a, store_a), control_plane(settings) as (_, store_b):
            repo = await cp_a.repository()
            org_id, _ = await _org_endpoint(repo, store_a, "https://hooks.example.com/x",
                                            types=["call.started", "call.answered"])
            calls = [await repo.create_call(_call(org_id)) for _ in range(40)]
            for call in calls:
                await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "answered",
                                                                               "answered_at": utcnow()}))
            now = utcnow() + timedelta(seconds=1)
            got_a, got_b = await asyncio.gather(*(s.claim(now=now, limit=30, lease_s=60) for s in (store_a, store_b)))
            ids_a, ids_b = {d.id for d in got_a}, {d.id for d in got_b}
            assert not ids_a & ids_b
            claimed = [*got_a, *got_b]
            assert len(claimed) == 40  # every call's head, and only heads
            assert {d.order_key for d in claimed} == {str(c.id) for c in calls}
            payloads = [orjson.loads(d.body)["type"] for d in claimed]
            assert set(payloads) == {"call.started"}
            # Leased and not settled: nothing more to claim (the answered events wait behind them).
            assert await store_b.claim(now=now, limit=100, lease_s=60) == []
    finally:
        await _pg_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_turns_and_call_updates_racing_on_one_call_never_deadlock(own_settings):
    """Each writer takes the call's row lock before anything else touches the row, so a turn
    recorded while a webhook updates the call waits instead of deadlocking (PostgreSQL)."""
    async with control_plane(own_settings) as (cp, store):
        repo = await cp.repository()
        org_id, _ = await _org_endpoint(repo, store, "https://hooks.example.com/r")
        call = await repo.create_call(_call(org_id, status="answered", answered_at=utcnow()))

        async def turn(index: int) -> None:
            await repo.upsert_turn(Turn(call_id=call.id, org_id=org_id, index=index, caller_text="x",
                                        created_at=utcnow()))

        async def recording(index: int) -> None:
            await repo.update_call(call.id, lambda c: c.model_copy(update={"recording_url": f"https://r/{index}"}))

        await asyncio.gather(*(f(i) for i in range(30) for f in (turn, recording)))
        kinds = [d.event_type for d in await store.list_deliveries(org_id, limit=1000)]
        assert kinds.count("call.turn") == 30 and kinds.count("call.recording_ready") == 30
