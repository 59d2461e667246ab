"""Limits on what one organisation can do to the shared webhook machinery: its share of the
delivery worker, how many endpoints it has, how much one replay queues, and query values the
database cannot hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from control_plane.settings import Settings
from control_plane.store import utcnow
from control_plane.store.outbox import Attempt

from .fakes import harness
from .test_outbound_webhooks import _call, _org_endpoint, control_plane, own_settings

WIDE = {"since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"}


def _with(settings: Settings, **webhooks: Any) -> Settings:
    return settings.model_copy(update={"outbound_webhooks": settings.outbound_webhooks.model_copy(update=webhooks)})


async def test_one_organisations_backlog_does_not_starve_another(own_settings):
    async with control_plane(own_settings) as (cp, store):
        repo = await cp.repository()
        busy, _ = await _org_endpoint(repo, store, "https://a.example.com/x", types=["call.started"])
        quiet, _ = await _org_endpoint(repo, store, "https://b.example.com/x", types=["call.started"])
        for _ in range(30):
            await repo.create_call(_call(busy))
        late = await repo.create_call(_call(quiet))  # written after all of the busy organisation's
        now = utcnow() + timedelta(seconds=1)
        first = await store.claim(now=now, limit=5, lease_s=60)
        assert str(late.id) in {d.order_key for d in first}  # its turn comes in the first claim
        # At most per_org in flight for one organisation: the rest wait although slots are free.
        more = await store.claim(now=now, limit=50, lease_s=60, per_org=10)
        assert len(first) - 1 + len(more) == 10
        assert await store.claim(now=now, limit=50, lease_s=60, per_org=10) == []
        for delivery in more[:3]:  # settled: their slots are the organisation's again
            await store.settle(delivery.id, attempt=Attempt(attempted_at=now, status_code=500, latency_ms=1),
                               state="failed")
        assert len(await store.claim(now=now, limit=50, lease_s=60, per_org=10)) == 3


async def test_replays_never_multiply_deliveries_and_are_bounded(own_settings):
    settings = _with(own_settings, replay_max_events=4, replay_max_span_s=3 * 86400)
    async with harness(settings) as h:
        org, headers = await h.org("A")
        assert (await h.client.post("/api/webhooks/endpoints", json={"url": "https://a.example.com/x",
                                                                     "event_types": ["call.started"]},
                                    headers=headers)).status == 201
        repo, store = await h.cp.repository(), h.cp.outbound_webhooks.store
        for _ in range(3):
            await repo.create_call(_call(org.id))
        since = (utcnow() - timedelta(hours=1)).isoformat()
        until = (utcnow() + timedelta(hours=1)).isoformat()
        window = {"since": since, "until": until}
        for _ in range(4):  # all three still pending: nothing more to queue
            response = await h.client.post("/api/webhooks/replay", json=window, headers=headers)
            assert response.status == 202 and (await response.json())["queued"] == 0
        assert len(await store.list_deliveries(org.id, limit=100)) == 3
        now = utcnow() + timedelta(seconds=1)
        for delivery in await store.claim(now=now, limit=100, lease_s=60):
            await store.settle(delivery.id, attempt=Attempt(attempted_at=now, status_code=500, latency_ms=1),
                               state="failed")
        for expected in (3, 0, 0):
            response = await h.client.post("/api/webhooks/replay", json=window, headers=headers)
            assert (await response.json())["queued"] == expected
        assert len(await store.list_deliveries(org.id, limit=100)) == 6

        for _ in range(5):  # 5 failed messages to replay, more than replay_max_events
            await repo.create_call(_call(org.id))
        for delivery in await store.claim(now=utcnow() + timedelta(seconds=1), limit=100, lease_s=60):
            await store.settle(delivery.id, attempt=Attempt(attempted_at=now, status_code=500, latency_ms=1),
                               state="failed")
        before = len(await store.list_deliveries(org.id, limit=100))
        too_many = await h.client.post("/api/webhooks/replay", json=window, headers=headers)
        error = (await too_many.json())["error"]
        assert too_many.status == 400 and error["code"] == "replay_too_large"
        assert "replay_max_events" in error["message"]
        assert len(await store.list_deliveries(org.id, limit=100)) == before  # nothing queued
        too_long = await h.client.post("/api/webhooks/replay", json={"since": "2000-01-01T00:00:00Z",
                                                                      "until": "2000-01-05T00:00:00Z"},
                                       headers=headers)
        assert too_long.status == 400 and "replay_max_span_s" in (await too_long.json())["error"]["message"]


async def test_endpoints_per_organisation_are_capped(own_settings):
    async with harness(_with(own_settings, max_endpoints_per_org=2)) as h:
        _, headers = await h.org("A")
        _, other = await h.org("B")
        for n in range(2):
            created = await h.client.post("/api/webhooks/endpoints", json={"url": f"https://e{n}.example.com/"},
                                          headers=headers)
            assert created.status == 201
        refused = await h.client.post("/api/webhooks/endpoints", json={"url": "https://e3.example.com/"},
                                      headers=headers)
        error = (await refused.json())["error"]
        assert refused.status == 409 and error["code"] == "too_many_endpoints" and "at most 2" in error["message"]
        assert len((await (await h.client.get("/api/webhooks/endpoints", headers=headers)).json())["data"]) == 2
        assert (await h.client.post("/api/webhooks/endpoints", json={"url": "https://b.example.com/"},
                                    headers=other)).status == 201  # another organisation's own count


async def test_ids_past_the_databases_bigint_are_a_400_not_a_500(own_settings):
    async with harness(own_settings) as h:
        _, headers = await h.org("A")
        for value in ("9223372036854775808", "99999999999999999999"):
            response = await h.client.get(f"/api/webhooks/deliveries?before_id={value}", headers=headers)
            assert response.status == 400 and (await response.json())["error"]["code"] == "validation_error"
        largest = await h.client.get("/api/webhooks/deliveries?before_id=9223372036854775807", headers=headers)
        assert largest.status == 200
        assert (await h.client.get("/api/webhooks/deliveries/9223372036854775808", headers=headers)).status == 404


async def test_endpoint_urls_are_sealed_at_rest_and_shown_without_credentials(own_settings):
    url = "https://user:pa55@hooks.example.com/in/crm?token=s3cret-token"
    async with harness(own_settings) as h:
        org, headers = await h.org("A")
        created = await (await h.client.post("/api/webhooks/endpoints", json={"url": url}, headers=headers)).json()
        shown = "https://hooks.example.com/in/crm?…"
        assert created["url"] == shown
        listed = await (await h.client.get("/api/webhooks/endpoints", headers=headers)).json()
        got = await (await h.client.get(f"/api/webhooks/endpoints/{created['id']}", headers=headers)).json()
        assert listed["data"][0]["url"] == got["url"] == shown
        patched = await h.client.patch(f"/api/webhooks/endpoints/{created['id']}",
                                       json={"url": url.replace("crm", "erp")}, headers=headers)
        assert (await patched.json())["url"] == shown.replace("crm", "erp")
        store = h.cp.outbound_webhooks.store
        async with store.db.connection() as conn:
            stored = [r["url"] for r in await conn.fetch("SELECT url FROM webhook_endpoints")]
        assert len(stored) == 1 and "hooks.example.com" not in stored[0] and "s3cret" not in stored[0]
        # The worker still posts to the whole URL.
        assert (await store.list_endpoints(org.id))[0].url == url.replace("crm", "erp")
        await (await h.cp.repository()).create_call(_call(org.id))
        claimed = await store.claim(now=utcnow() + timedelta(seconds=1), limit=10, lease_s=60)
        assert [d.url for d in claimed] == [url.replace("crm", "erp")]
