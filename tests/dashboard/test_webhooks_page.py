"""The webhooks page: the organisation's endpoints and deliveries, a replay per event; nothing of
another organisation's, and no replay of its events."""

from __future__ import annotations

from uuid import uuid4

from control_plane.store import Call, utcnow
from control_plane.store.outbox import Attempt

from .helpers import secret_of, session_token, sign_in


async def test_webhooks_page_lists_deliveries_and_replays_only_the_organisations_own(h):
    org, headers = await h.org("A")
    other, other_headers = await h.org("B")
    for hdrs, url, event in ((headers, "https://a.example.com/<hook>", "call.started"),
                             (other_headers, "https://b.example.com/in", "call.started"),
                             (headers, "https://me:Pa55w0rdNeverShown@c.example.com/in?key=K3yNeverShown",
                              "call.ended")):
        assert (await h.client.post("/api/webhooks/endpoints", json={"url": url, "event_types": [event]},
                                    headers=hdrs)).status == 201
    repo = await h.cp.repository()
    store = h.cp.outbound_webhooks.store
    for org_id in (org.id, other.id):
        now = utcnow()
        await repo.create_call(Call(id=uuid4(), org_id=org_id, direction="outbound", to_number="+14155550101",
                                    from_number="+14155550100", status="queued", created_at=now,
                                    updated_at=now))
    mine = (await store.list_deliveries(org.id))[0]
    theirs = (await store.list_deliveries(other.id))[0]

    assert (await sign_in(h.client, secret_of(headers))).status == 303
    token = await session_token(h.client)
    text = await (await h.client.get("/dashboard/webhooks")).text()
    assert "https://a.example.com/%3Chook%3E" in text  # stored as yarl normalised it
    assert mine.message_id in text and "call.started" in text
    # (Secrets long enough that no random id or token on the page can contain them by chance:
    # "k3y" once turned up inside a message id.)
    assert "https://c.example.com/in?…" in text and "Pa55w0rd" not in text and "K3yNeverShown" not in text
    assert theirs.message_id not in text and "b.example.com" not in text

    waiting = await h.client.post("/dashboard/webhooks/replay",
                                  data={"csrf_token": token, "message_id": mine.message_id},
                                  allow_redirects=False)  # still pending: not queued twice
    assert waiting.headers["Location"] == "/dashboard/webhooks?notice=webhook_pending"
    assert len(await store.list_deliveries(org.id)) == 1
    await store.settle(mine.id, attempt=Attempt(attempted_at=utcnow(), status_code=500, latency_ms=1),
                       state="failed")
    replayed = await h.client.post("/dashboard/webhooks/replay",
                                   data={"csrf_token": token, "message_id": mine.message_id},
                                   allow_redirects=False)
    assert replayed.status == 303 and replayed.headers["Location"] == "/dashboard/webhooks?notice=webhook_replayed"
    assert len(await store.list_deliveries(org.id)) == 2
    foreign = await h.client.post("/dashboard/webhooks/replay",
                                  data={"csrf_token": token, "message_id": theirs.message_id})
    assert foreign.status == 404 and len(await store.list_deliveries(other.id)) == 1
    no_csrf = await h.client.post("/dashboard/webhooks/replay", data={"message_id": mine.message_id})
    assert no_csrf.status == 403
