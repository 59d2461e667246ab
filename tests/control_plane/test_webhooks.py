"""Telnyx webhooks: verification, durability, idempotency and the call state machine."""

from __future__ import annotations

import time
import uuid

import pytest

from control_plane.app import CONTROL_PLANE_KEY, create_app
from control_plane.callstate import client_state_for
from control_plane.streamauth import verify_token
from control_plane.telnyx.webhooks import generate_keypair
from tests.fixtures.servers import sqlite_only
from tests.fixtures.waiting import eventually

from .conftest import make_settings
from .fakes import encoded_state, harness, signed_webhook, telnyx_error, unused_bits_flipped


async def _event_rows(cp, event_id: str) -> int:
    repo = await cp.repository()
    async with repo.connection() as conn:
        row = await conn.fetchrow("SELECT count(*) AS n FROM call_events WHERE event_id = $1", event_id)
    return int(row["n"])


async def _call(h, headers, call_id):
    return await (await h.client.get(f"/api/calls/{call_id}", headers=headers)).json()


async def test_forged_stale_and_replayed_webhooks_are_rejected_and_write_nothing(h):
    payload = {"call_control_id": "v3:forged", "hangup_cause": "normal_clearing"}
    forger, _ = generate_keypair()
    cases = {
        "forged": signed_webhook("call.hangup", payload, key=forger),
        "stale": signed_webhook("call.hangup", payload, timestamp=int(time.time()) - 600),
        "future": signed_webhook("call.hangup", payload, timestamp=int(time.time()) + 600),
    }
    body, headers = signed_webhook("call.hangup", payload)
    cases["missing signature"] = (body, {k: v for k, v in headers.items() if "signature" not in k})
    cases["tampered body"] = (body.replace(b"normal_clearing", b"user_busy"), headers)
    for name, (raw, request_headers) in cases.items():
        response = await h.client.post("/webhook/telnyx", data=raw, headers=request_headers)
        assert response.status == 401, name
        assert (await response.json())["error"]["code"] == "invalid_signature", name
    import orjson

    for raw, _ in cases.values():
        assert await _event_rows(h.cp, orjson.loads(raw)["data"]["id"]) == 0

    # A genuine request is accepted once; the identical request again is a replay.
    body, headers = signed_webhook("call.hangup", payload)
    first = await h.client.post("/webhook/telnyx", data=body, headers=headers)
    assert first.status == 200
    replay = await h.client.post("/webhook/telnyx", data=body, headers=headers)
    assert replay.status == 401 and (await replay.json())["error"]["code"] == "replayed"
    assert await _event_rows(h.cp, orjson.loads(body)["data"]["id"]) == 1


async def test_duplicate_events_are_acknowledged_and_change_nothing(h):
    _, headers = await h.org()
    call = await (await h.start_call(headers)).json()
    event_id = str(uuid.uuid4())
    ccid = call["call_control_id"]
    answered = {"call_control_id": ccid, "state": "answered"}
    first = await h.webhook("call.answered", answered, event_id=event_id, occurred_at="2026-01-01T12:00:05Z")
    assert first.status == 200 and (await first.json())["duplicate"] is False
    await h.settle()
    before = await _call(h, headers, call["call_id"])
    # Telnyx redelivers (new timestamp, new signature, same event id), even with another body.
    again = await h.webhook("call.answered", answered, event_id=event_id, occurred_at="2026-01-01T12:09:00Z",
                            timestamp=int(time.time()) - 5)
    assert again.status == 200 and (await again.json())["duplicate"] is True
    await h.settle()
    after = await _call(h, headers, call["call_id"])
    assert after == before and after["answered_at"].startswith("2026-01-01T12:00:05")
    assert await _event_rows(h.cp, event_id) == 1
    assert [e["id"] for e in after["events"]] == [event_id]


async def test_out_of_order_events_reach_the_right_final_state(h):
    _, headers = await h.org()
    # hangup before answered: completed, and the late answered neither resurrects nor regresses it.
    call = await (await h.start_call(headers)).json()
    ccid = call["call_control_id"]
    await h.webhook("call.hangup", {"call_control_id": ccid, "hangup_cause": "normal_clearing",
                                    "hangup_source": "callee", "sip_hangup_cause": "200",
                                    "call_quality_stats": {"inbound": {"mos": "4.4"}}},
                    occurred_at="2026-01-01T12:01:00Z")
    await h.webhook("call.answered", {"call_control_id": ccid}, occurred_at="2026-01-01T12:00:10Z")
    await h.webhook("call.initiated", {"call_control_id": ccid, "direction": "outgoing"},
                    occurred_at="2026-01-01T12:00:00Z")
    await h.settle()
    detail = await _call(h, headers, call["call_id"])
    assert detail["status"] == "completed"
    assert detail["answered_at"].startswith("2026-01-01T12:00:10") and detail["duration_s"] == 50.0
    assert (detail["hangup_cause"], detail["hangup_source"]) == ("normal_clearing", "callee")
    assert detail["quality"] == {"inbound": {"mos": "4.4"}}
    assert [s["status"] for s in detail["status_history"]][-1] == "completed"

    # Unanswered: a busy callee ends busy even if a stray answered follows.
    busy = await (await h.start_call(headers)).json()
    await h.webhook("call.hangup", {"call_control_id": busy["call_control_id"], "hangup_cause": "user_busy"})
    await h.settle()
    await h.webhook("call.answered", {"call_control_id": busy["call_control_id"]})
    await h.settle()
    assert (await _call(h, headers, busy["call_id"]))["status"] == "busy"

    # Ring timeout with no answer, then hangup arriving twice.
    silent = await (await h.start_call(headers)).json()
    for _ in range(2):
        await h.webhook("call.hangup", {"call_control_id": silent["call_control_id"], "hangup_cause": "timeout"})
    await h.settle()
    assert (await _call(h, headers, silent["call_id"]))["status"] == "no_answer"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_webhooks_before_the_dial_response_find_the_call_by_client_state(h):
    _org, headers = await h.org()
    call = await (await h.start_call(headers)).json()
    repo = await h.cp.repository()
    # Simulate the race: the row has no call_control_id yet when call.answered arrives.
    await repo.update_call(uuid.UUID(call["call_id"]), lambda c: c.model_copy(update={"call_control_id": None}))
    await h.webhook("call.answered", {"call_control_id": "v3:from-webhook",
                                      "client_state": encoded_state(client_state_for(uuid.UUID(call["call_id"])))})
    await h.settle()
    detail = await _call(h, headers, call["call_id"])
    assert detail["status"] == "answered" and detail["call_control_id"] == "v3:from-webhook"


async def test_unknown_calls_and_event_types_are_stored_without_failing(h):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    await h.webhook("call.hangup", {"call_control_id": "v3:never-dialled", "hangup_cause": "normal_clearing"},
                    event_id=ids[0])
    await h.webhook("call.something.new", {"call_control_id": "v3:never-dialled", "x": [1, 2]}, event_id=ids[1])
    await h.webhook("call.initiated", {"call_control_id": "v3:in", "direction": "incoming",
                                       "to": "+19995550100", "from": "+14155550123"}, event_id=ids[2])
    await h.settle()
    repo = await h.cp.repository()
    for event_id in ids[:2]:
        event = await repo.get_event(event_id)
        assert event.processed_at is not None and event.last_error is None and event.call_id is None
    assert (await repo.get_event(ids[1])).payload == {"call_control_id": "v3:never-dialled", "x": [1, 2]}
    # Nobody owns +19995550100: the caller is rejected, not left ringing, and the event says why.
    assert [name for name, _ in h.telnyx.commands] == ["reject"]
    assert h.telnyx.named("reject")[0]["call_control_id"] == "v3:in"
    unrouted = await repo.get_event(ids[2])
    assert unrouted.processed_at is not None and unrouted.call_id is None and unrouted.attempts <= 1
    assert unrouted.last_error == "rejected: +19995550100 is not registered to any organisation (callagent number add)"


async def test_inbound_call_to_an_owned_number_is_answered_with_its_agent(h):
    org, headers = await h.org()
    number = "+1312555" + str(uuid.uuid4().int)[:4]
    repo = await h.cp.repository()
    await repo.add_phone_number(org.id, number, {"personality": "receptionist", "voice": "v", "language": "en"})
    event_id = str(uuid.uuid4())
    payload = {"call_control_id": "v3:inbound-" + event_id, "direction": "incoming", "to": number,
               "from": "+14155550123", "state": "parked"}
    await h.webhook("call.initiated", payload, event_id=event_id)
    await h.settle()
    (answer,) = h.telnyx.named("answer")
    assert answer["call_control_id"] == payload["call_control_id"]
    base, _, token = answer["stream_url"].partition("?token=")
    assert base == "wss://agent.example.com/media-stream"
    # The credential rides in the URL: the SDK's answer has no stream_auth_token.
    assert "stream_auth_token" not in answer
    (call_row,) = (await repo.list_calls(org.id)).calls
    assert verify_token(h.cp.keys.hasher, token) == call_row.id
    assert (answer["stream_track"], answer["stream_bidirectional_mode"], answer["stream_bidirectional_codec"]) == (
        "inbound_track", "rtp", "PCMU")
    calls = await (await h.client.get("/api/calls", headers=headers)).json()
    (call,) = calls["data"]
    assert (call["direction"], call["to"], call["from"], call["status"]) == (
        "inbound", number, "+14155550123", "initiated")
    context = await h.cp.recorder.lookup(payload["call_control_id"])
    assert context.agent_config["personality"] == "receptionist"
    # The same call.initiated redelivered under a new id (or reprocessed) answers with the same command id.
    await h.webhook("call.initiated", payload)
    await h.settle()
    answers = h.telnyx.named("answer")
    assert len({a["command_id"] for a in answers}) == 1
    assert len((await (await h.client.get("/api/calls", headers=headers)).json())["data"]) == 1
    await h.webhook("call.answered", {"call_control_id": payload["call_control_id"]})
    await h.settle()
    assert (await _call(h, headers, call["id"]))["status"] == "answered"


async def test_processing_survives_a_crash_between_ack_and_processing(tmp_path):
    settings = make_settings(tmp_path)
    async with harness(settings) as h:
        _, headers = await h.org()
        call = await (await h.start_call(headers)).json()
        await h.cp.worker.stop()
        h.cp.worker.notify = lambda: None  # this process "dies" before processing
        ack = await h.webhook("call.answered", {"call_control_id": call["call_control_id"]})
        assert ack.status == 200
        assert (await _call(h, headers, call["call_id"]))["status"] == "initiated"
    # A new process on the same store processes it at start-up, with no new webhook.
    app = create_app(settings)
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app)) as client:
        assert app[CONTROL_PLANE_KEY].settings.webhooks.poll_interval_s >= 1.0
        async def answered() -> bool:  # no drain() here: the start-up drain alone must do it
            detail = await (await client.get(f"/api/calls/{call['call_id']}", headers=headers)).json()
            return detail["status"] == "answered"

        await eventually(answered)


async def test_failed_processing_is_retried_then_parked(tmp_path):
    settings = make_settings(tmp_path, webhooks={"max_attempts": 2})
    async with harness(settings) as h:
        _, _headers = await h.org()
        await h.cp.repository()
        number = "+13125550199"
        org, _ = await h.org("owner")
        await (await h.cp.repository()).add_phone_number(org.id, number, {"personality": "p"})
        from control_plane.telnyx.client import TelnyxConnectionError

        h.telnyx.fail_action = TelnyxConnectionError("down")
        event_id = str(uuid.uuid4())
        await h.webhook("call.initiated", {"call_control_id": "v3:retry", "direction": "incoming", "to": number,
                                           "from": "+14155550123"}, event_id=event_id)
        await h.settle()
        repo = await h.cp.repository()
        event = await repo.get_event(event_id)
        assert event.processed_at is None and "down" in event.last_error and event.attempts == 1
        # Retry due now (back-date the schedule), then it is parked after max_attempts.
        await repo.retry_event(event_id, error=event.last_error, retry_in_s=0, lease_s=60)
        await h.settle()
        parked = await repo.get_event(event_id)
        assert parked.processed_at is not None and parked.attempts == 2 and "down" in parked.last_error
        # A refused answer (422: the caller hung up) is final: the call is marked failed, not retried.
        h.telnyx.fail_action = telnyx_error(422, "90018", "Call has already ended")
        await h.webhook("call.initiated", {"call_control_id": "v3:gone", "direction": "incoming", "to": number,
                                           "from": "+14155550124"})
        await h.settle()
        gone = await repo.find_call_by_control_id("v3:gone")
        assert gone.status == "failed" and gone.error["errors"][0]["code"] == "90018"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_recording_cost_amd_and_streaming_events_update_the_call(h):
    _, headers = await h.org()
    call = await (await h.start_call(headers, agent_config={"personality": "friendly", "record": True})).json()
    ccid = call["call_control_id"]
    events = [
        ("streaming.started", {"stream_url": "wss://x"}),
        ("call.answered", {}),
        ("call.machine.detection.ended", {"result": "human"}),
        ("call.speak.started", {}),
        ("call.dtmf.received", {"digit": "5"}),
        ("call.gather.ended", {"digits": "12", "status": "valid"}),
        ("streaming.stopped", {}),
        ("call.hangup", {"hangup_cause": "normal_clearing"}),
        ("call.recording.saved", {"recording_id": "rec-1", "channels": "dual",
                                  "recording_urls": {"mp3": "https://rec.example/1.mp3"}}),
        ("call.cost", {"total_cost": "0.0325", "cost_parts": [{"currency": "USD", "cost": "0.0325"}]}),
    ]
    for kind, payload in events:
        assert (await h.webhook(kind, {"call_control_id": ccid, **payload})).status == 200
    await h.settle()
    (record,) = h.telnyx.named("record_start")
    assert record["call_control_id"] == ccid and record["channels"] == "dual"
    detail = await _call(h, headers, call["call_id"])
    assert detail["recording_url"] == "https://rec.example/1.mp3"
    assert detail["cost"] == {"amount": "0.0325", "currency": "USD"}
    assert detail["amd_result"] == "human" and detail["status"] == "completed"
    assert [e["type"] for e in detail["events"]] == [kind for kind, _ in events]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_recording_saved_in_the_sdk_shape_is_matched_by_client_state_and_leg(h):
    """The SDK's call.recording.saved has no call_control_id (issue 15 item 3): it is matched by
    the client_state our record_start set, and only when its call_leg_id is the call's own."""
    _, headers = await h.org()
    call = await (await h.start_call(headers, agent_config={"record": True})).json()
    ccid = call["call_control_id"]
    await h.webhook("call.answered", {"call_control_id": ccid})
    await h.settle()
    (record,) = h.telnyx.named("record_start")
    state = client_state_for(uuid.UUID(call["call_id"]))
    assert record["client_state"] == state
    stored = await (await h.cp.repository()).find_call_by_control_id(ccid)
    saved = {"call_leg_id": stored.call_leg_id, "call_session_id": stored.call_session_id,
             "client_state": encoded_state(state), "channels": "dual",
             "recording_urls": {"mp3": "https://rec.example/1.mp3"}}
    # The same client_state on another leg (a transfer copies it) is not this call's recording.
    await h.webhook("call.recording.saved", {**saved, "call_leg_id": str(uuid.uuid4()),
                                             "recording_urls": {"mp3": "https://rec.example/other.mp3"}})
    await h.settle()
    assert (await _call(h, headers, call["call_id"]))["recording_url"] is None
    await h.webhook("call.recording.saved", saved)
    await h.settle()
    assert (await _call(h, headers, call["call_id"]))["recording_url"] == "https://rec.example/1.mp3"


async def test_streaming_failure_hangs_up_and_an_orphan_answer_is_ended(tmp_path):
    # With stream recovery off; with it on, the recovery sweep re-attaches the call instead.
    async with harness(make_settings(tmp_path, streams={"recovery": False})) as h:
        _, headers = await h.org()
        call = await (await h.start_call(headers)).json()
        await h.webhook("call.answered", {"call_control_id": call["call_control_id"]})
        await h.webhook("streaming.failed", {"call_control_id": call["call_control_id"],
                                             "failure_reason": "connection_failed"})
        await h.settle()
        assert [c["call_control_id"] for c in h.telnyx.named("hangup")] == [call["call_control_id"]]
        # A dial that "failed" (no response) but rang anyway: its answer is hung up at once.
        from control_plane.telnyx.client import TelnyxConnectionError

        h.telnyx.fail_dial = TelnyxConnectionError("timeout")
        failed = await (await h.start_call(headers)).json()
        call_id = uuid.UUID(failed["error"]["details"]["call_id"])
        await h.webhook("call.answered", {"call_control_id": "v3:orphan",
                                          "client_state": encoded_state(client_state_for(call_id))})
        await h.settle()
        assert h.telnyx.named("hangup")[-1]["call_control_id"] == "v3:orphan"
        assert (await _call(h, headers, call_id))["status"] == "failed"


async def test_webhooks_need_the_public_key_and_reject_non_envelopes(tmp_path):
    async with harness(make_settings(tmp_path, telnyx_public_key=None)) as h:
        body, headers = signed_webhook("call.answered", {})
        response = await h.client.post("/webhook/telnyx", data=body, headers=headers)
        assert response.status == 503
    async with harness(make_settings(tmp_path)) as h:
        from control_plane.telnyx.webhooks import sign

        from .fakes import WEBHOOK_PRIVATE_KEY

        raw = b'{"not": "an envelope"}'
        response = await h.client.post("/webhook/telnyx", data=raw,
                                       headers=sign(raw, WEBHOOK_PRIVATE_KEY, int(time.time())))
        assert response.status == 400 and (await response.json())["error"]["code"] == "invalid_webhook"


async def test_a_re_encoded_signature_is_a_replay_across_processes(tmp_path, redis_prefix):
    # Fails before the fix: the Redis guard named a request by its header string, and the
    # lenient decoder accepted these spellings of the same signature, so each got a 200.
    settings = make_settings(tmp_path, redis_prefix=redis_prefix)
    async with harness(settings) as h:
        body, headers = signed_webhook("call.hangup", {"call_control_id": "v3:replayed"})
        assert (await h.client.post("/webhook/telnyx", data=body, headers=headers)).status == 200
        signature = headers["telnyx-signature-ed25519"]
        for respelled in (unused_bits_flipped(signature), signature + "!", signature[:30] + "\t" + signature[30:]):
            response = await h.client.post("/webhook/telnyx", data=body,
                                           headers={**headers, "telnyx-signature-ed25519": respelled})
            assert response.status == 401, respelled
        import orjson

        assert await _event_rows(h.cp, orjson.loads(body)["data"]["id"]) == 1


async def test_a_webhook_whose_store_failed_is_accepted_when_delivered_again(tmp_path, redis_prefix):
    # Fails before the fix: the replay claim was taken before the insert, so Telnyx's
    # redelivery of the same request after a 500 was refused as "replayed" and the event lost.
    for settings in (make_settings(tmp_path / "memory"), make_settings(tmp_path / "redis", redis_prefix=redis_prefix)):
        async with harness(settings) as h:
            repo = await h.cp.repository()
            real_insert = repo.insert_event
            failures = []

            async def failing_once(event, failures=failures, real_insert=real_insert):
                if not failures:
                    failures.append(event.event_id)
                    raise ConnectionError("database is down")
                return await real_insert(event)

            repo.insert_event = failing_once
            body, headers = signed_webhook("call.hangup", {"call_control_id": "v3:retried"})
            assert (await h.client.post("/webhook/telnyx", data=body, headers=headers)).status == 500
            again = await h.client.post("/webhook/telnyx", data=body, headers=headers)
            assert again.status == 200 and (await again.json())["duplicate"] is False
            # Stored once; a third delivery of the very same request is a replay.
            third = await h.client.post("/webhook/telnyx", data=body, headers=headers)
            assert third.status == 401 and (await third.json())["error"]["code"] == "replayed"
            import orjson

            assert await _event_rows(h.cp, orjson.loads(body)["data"]["id"]) == 1


@pytest.mark.parametrize("shape", ["sdk", "docs"])
@sqlite_only
async def test_recording_saved_without_client_state_is_matched_by_its_leg(h, shape):
    """A recording started outside the app (the portal, another application) carries no client_state
    of ours: the SDK's payload (no call_control_id) is matched by call_leg_id alone, the docs' by
    call_control_id; an unknown leg reaches no call."""
    _, headers = await h.org()
    call = await (await h.start_call(headers)).json()
    ccid = call["call_control_id"]
    await h.webhook("call.answered", {"call_control_id": ccid})
    await h.settle()
    stored = await (await h.cp.repository()).find_call_by_control_id(ccid)
    assert stored.call_leg_id
    saved = {"call_session_id": stored.call_session_id, "channels": "single",
             "recording_urls": {"mp3": "https://rec.example/portal.mp3"}}
    if shape == "docs":
        saved["call_control_id"] = ccid
    await h.webhook("call.recording.saved", {**saved, "call_leg_id": str(uuid.uuid4()),
                                             "recording_urls": {"mp3": "https://rec.example/other.mp3"}}
                    if shape == "sdk" else {**saved, "call_control_id": "v3:unknown"})
    await h.settle()
    assert (await _call(h, headers, call["call_id"]))["recording_url"] is None
    await h.webhook("call.recording.saved", {**saved, "call_leg_id": stored.call_leg_id})
    await h.settle()
    assert (await _call(h, headers, call["call_id"]))["recording_url"] == "https://rec.example/portal.mp3"
