"""GDPR erasure end to end: after DELETE /api/contacts/{phone}, no trace of the number or its
transcripts in a full dump of the database (sealed values opened with the key) or of Redis."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from control_plane.crypto import DecryptionError
from control_plane.sessions import SESSION_CONTEXT, CallSession

from .conftest import REDIS_URL, make_settings
from .fakes import harness
from .helpers import add_contact, dump_database, make_campaign, open_sealed

SUBJECT = "+442071838750"
DIGITS = SUBJECT.lstrip("+")
PHRASE = "my account number is Quixotic-7731"
NAME = "Wilhelmina Fairweather"


async def _dump_redis(prefix: str, cipher) -> str:
    client = redis.from_url(REDIS_URL)
    parts = []
    try:
        async for key in client.scan_iter(match=prefix + "*", count=500):
            kind = (await client.type(key)).decode()
            if kind == "string":
                value = (await client.get(key)).decode()
            elif kind == "zset":
                value = repr(await client.zrange(key, 0, -1, withscores=True))
            elif kind == "hash":
                value = repr(await client.hgetall(key))
            else:
                value = repr(await client.dump(key))
            parts.append(f"{key.decode()} = {value}")
    finally:
        await client.aclose()
    text = "\n".join(parts)
    # Open sealed session envelopes too: erasure must remove the data, not just hide it.
    import re

    def opened(match: re.Match[str]) -> str:
        try:
            return cipher.open_bytes(match.group(0), SESSION_CONTEXT).decode()
        except DecryptionError:
            return match.group(0)

    return re.sub(r"v1\.[0-9a-f]{8}\.[A-Za-z0-9_\-]+", opened, text)


def _traces(text: str) -> list[str]:
    return [needle for needle in (SUBJECT, DIGITS, PHRASE, "Quixotic", NAME, "Wilhelmina") if needle in text]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_erasure_leaves_no_trace_in_database_or_redis(backend, tmp_path, own_pg_schema, redis_prefix):
    # Its own schema: it searches every table for the subject, and other tests' rows may hold the number.
    settings = make_settings(tmp_path, backend=backend, pg_schema=own_pg_schema, redis_prefix=redis_prefix)
    async with harness(settings) as h:
        org, headers = await h.org()
        _, other_headers = await h.org("other")
        repo = await h.cp.repository()
        cipher = h.cp.keys.cipher
        prefix = settings.redis_key_prefix
        # The organisation's app receives its events: the webhook outbox holds numbers and transcripts.
        hooked = await h.client.post("/api/webhooks/endpoints", json={"url": "https://hooks.example.com/in"},
                                     headers=headers)
        assert hooked.status == 201

        # An outbound call to the subject, with everything a real call leaves behind.
        # (Its Idempotency-Key holds the number too: kept only as a keyed hash.)
        started = await (await h.start_call({**headers, "Idempotency-Key": f"welcome-{SUBJECT}"}, to=SUBJECT,
                                            agent_config={
            "personality": "sales", "system_prompt": f"You are calling {NAME}.", "variables": {"name": NAME},
            "language": "en-GB", "record": True})).json()
        ccid = started["call_control_id"]
        common = {"call_control_id": ccid, "from": "+14155550100", "to": SUBJECT}
        await h.webhook("call.initiated", {**common, "direction": "outgoing"})
        await h.webhook("call.answered", common)
        await h.webhook("call.transcription", {**common, "transcription_data": {"transcript": PHRASE}})
        await h.webhook("call.recording.saved", {**common, "recording_id": "rec-77",
                                                 "recording_urls": {"mp3": "https://rec.example/77.mp3"}})
        await h.webhook("call.hangup", {**common, "hangup_cause": "normal_clearing"})
        await h.settle()
        await h.cp.recorder.record_turn(ccid, 0, caller_text=PHRASE, agent_text=f"Thank you, {NAME}.",
                                        latency={"turn_latency_ms": 380.0})
        await h.cp.recorder.finish(ccid, summary=f"{NAME} ({SUBJECT}) gave {PHRASE}", outcome={"name": NAME})
        await h.cp.sessions.save(CallSession(call_control_id=ccid, metadata={"to": SUBJECT},
                                             history=[{"role": "user", "content": PHRASE}]))
        # An inbound call from the subject to one of the organisation's numbers.
        number = "+1312555" + str(uuid.uuid4().int)[:4]
        await repo.add_phone_number(org.id, number, {"personality": "receptionist"})
        await h.webhook("call.initiated", {"call_control_id": "v3:in-" + ccid, "direction": "incoming",
                                           "from": SUBJECT, "to": number})
        await h.settle()
        # A campaign contact, a DNC entry, an unrelated call and another organisation's call.
        campaign = await make_campaign(repo, org.id, "spring")
        await add_contact(repo, org.id, campaign.id, SUBJECT, {"name": NAME})
        assert (await h.client.post("/api/dnc", json={"phone": SUBJECT}, headers=headers)).status == 201
        kept = await (await h.start_call(headers, to="+14155550177")).json()
        theirs = await (await h.start_call(other_headers, to="+14155550188")).json()

        before_db = open_sealed(await dump_database(repo), cipher)
        before_redis = await _dump_redis(prefix, cipher)
        assert set(_traces(before_db)) >= {SUBJECT, PHRASE, NAME}  # the check below can fail
        assert "webhook_messages" in before_db and PHRASE in "".join(
            line for line in before_db.splitlines() if line.startswith("webhook_messages"))
        assert PHRASE in before_redis and SUBJECT in before_redis
        assert SUBJECT not in await dump_database(repo)  # sealed at rest even before erasure

        response = await h.client.delete(f"/api/contacts/{SUBJECT.replace('+', '%2B')}", headers=headers)
        assert response.status == 200, await response.text()
        receipt = await response.json()
        erased = receipt["erased"]
        assert erased["calls"] == 2 and erased["transcripts"] == 1 and erased["summaries"] == 1
        assert erased["recordings"] == 1 and erased["sessions"] == 1 and erased["campaign_contacts"] == 1
        assert erased["call_events"] >= 6
        assert receipt["carrier_recordings"] == ["rec-77"]
        assert receipt["phone_hash"] == repo.hash_phone(SUBJECT)

        after_db = open_sealed(await dump_database(repo), cipher)
        after_redis = await _dump_redis(prefix, cipher)
        assert _traces(after_db) == [], "\n".join([line for line in after_db.splitlines() if _traces(line)][:5])
        assert _traces(after_redis) == []

        detail = await (await h.client.get(f"/api/calls/{started['call_id']}", headers=headers)).json()
        assert detail["to"] is None and detail["erased"] is True and detail["from"] == "+14155550100"
        assert detail["summary"] is None and detail["recording_url"] is None and detail["outcome"] is None
        assert detail["turns"][0]["caller_text"] is None and detail["turns"][0]["latency"] == {"turn_latency_ms": 380.0}
        assert detail["status"] == "completed"  # operational data stays
        # Still not callable, other numbers and organisations untouched.
        assert (await h.start_call(headers, to=SUBJECT)).status == 409
        assert (await (await h.client.get(f"/api/calls/{kept['call_id']}", headers=headers)).json())["to"]
        assert (await (await h.client.get(f"/api/calls/{theirs['call_id']}", headers=other_headers)).json())["to"]
        # Erasing again finds nothing left and says so.
        again = await (await h.client.delete(f"/api/contacts/{SUBJECT.replace('+', '%2B')}", headers=headers)).json()
        assert again["erased"]["transcripts"] == 0 and again["erased"]["sessions"] == 0
        # Turns reported after the erasure (a call still running) are not stored.
        await h.cp.recorder.record_turn(ccid, 1, caller_text=PHRASE, agent_text="ok")
        assert PHRASE not in open_sealed(await dump_database(repo), cipher)
