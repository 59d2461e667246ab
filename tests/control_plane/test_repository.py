"""The repository contract, run against both backends (SQLite file, PostgreSQL schema)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from control_plane.campaigns.store import CampaignStore
from control_plane.crypto import api_key_lookup_prefix, hash_api_key, load_data_keys, new_api_key
from control_plane.store import (
    ApiKey,
    Call,
    Conflict,
    StatusChange,
    StoredEvent,
    Turn,
    migrate,
    open_repository,
    utcnow,
)
from control_plane.store.migrate import load_migrations

from .helpers import add_contact, dump_database, make_campaign


def _call(org_id, *, to="+14155550101", frm="+14155550100", status="queued", created_at=None, **extra) -> Call:
    now = created_at or utcnow()
    return Call(id=uuid4(), org_id=org_id, direction="outbound", to_number=to, from_number=frm, status=status,
                created_at=now, updated_at=now, **extra)


async def test_migrate_is_idempotent_and_tracked(settings):
    first = await migrate(settings)
    again = await migrate(settings)
    assert again == []
    repo = await open_repository(settings)
    try:
        async with repo.connection() as conn:
            rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows][:1] == [(1, "init")]
        every = [m.version for m in load_migrations("postgres" if settings.database_url else "sqlite")]
        assert first in (every, [])  # the PostgreSQL schema is shared by the session's tests
    finally:
        await repo.close()


async def test_organisations_and_api_keys(settings):
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation("Acme")
        assert (await repo.get_organisation(org.id)).name == "Acme"
        assert await repo.get_organisation(uuid4()) is None
        secret = new_api_key()
        key = ApiKey(id=uuid4(), org_id=org.id, name="ci", prefix=api_key_lookup_prefix(secret),
                     key_hash=hash_api_key(secret), created_at=utcnow())
        await repo.insert_api_key(key)
        with pytest.raises(Conflict):
            await repo.insert_api_key(key.model_copy(update={"id": uuid4()}))
        found = await repo.find_api_key(key.prefix)
        assert found == key
        assert secret not in await dump_database(repo)
        # The last active key cannot be revoked through the guarded path...
        with pytest.raises(Conflict):
            await repo.revoke_api_key(org.id, key.id, keep_one_active=True)
        # ...another organisation cannot revoke it at all...
        other = await repo.create_organisation("Other")
        assert await repo.revoke_api_key(other.id, key.id) is None
        # ...and the owner can.
        revoked = await repo.revoke_api_key(org.id, key.id)
        assert revoked.revoked_at is not None
        assert (await repo.list_api_keys(org.id))[0].revoked_at is not None
        assert await repo.list_api_keys(other.id) == []
    finally:
        await repo.close()


async def test_calls_are_sealed_scoped_and_updated_atomically(settings):
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation("A")
        other = await repo.create_organisation("B")
        call = await repo.create_call(_call(org.id, to="+14155550123", agent_config={"personality": "Quokka-7f3a"}))
        assert call.to_hash.startswith("h1:") and call.to_hash == repo.hash_phone("+14155550123")
        assert await repo.get_call(other.id, call.id) is None
        loaded = await repo.get_call(org.id, call.id)
        assert loaded.to_number == "+14155550123" and loaded.agent_config == {"personality": "Quokka-7f3a"}

        now = utcnow()
        updated = await repo.update_call(call.id, lambda c: c.model_copy(update={
            "status": "initiated", "call_control_id": "v3:abc", "call_leg_id": f"leg-{call.id}",
            "summary": "Caller agreed to a demo",
            "outcome": {"booked": True}, "cost_amount": Decimal("0.0125"), "cost_currency": "USD",
            "status_history": (*c.status_history, StatusChange(status="initiated", at=now, reason="dial")),
        }))
        assert updated.status == "initiated"
        again = await repo.find_call_by_control_id("v3:abc")
        assert again.summary == "Caller agreed to a demo" and again.outcome == {"booked": True}
        assert again.cost_amount == Decimal("0.0125") and again.status_history[0].reason == "dial"
        assert again.updated_at >= call.updated_at
        assert (await repo.find_call_by_leg_id(f"leg-{call.id}")).id == call.id  # recording.saved's key
        assert await repo.find_call_by_leg_id(f"leg-{uuid4()}") is None
        # A mutation returning None writes nothing.
        assert await repo.update_call(call.id, lambda c: None) == again
        assert await repo.update_call(uuid4(), lambda c: c) is None

        dump = await dump_database(repo)
        for secret in ("+14155550123", "14155550123", "Caller agreed", "Quokka-7f3a"):
            assert secret not in dump
        assert call.to_hash in dump
    finally:
        await repo.close()


async def test_list_calls_filters_and_cursor_pagination(settings):
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation("A")
        other = await repo.create_organisation("B")
        campaign = await make_campaign(repo, org.id, "spring")
        base = utcnow() - timedelta(hours=1)
        made = []
        for i in range(7):
            made.append(await repo.create_call(_call(
                org.id, created_at=base + timedelta(minutes=i), status="completed" if i % 2 else "failed",
                campaign_id=campaign.id if i < 3 else None)))
        await repo.create_call(_call(other.id, created_at=base))
        seen = []
        after = None
        while True:
            page = await repo.list_calls(org.id, limit=3, after=after)
            seen.extend(c.id for c in page.calls)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        assert seen == [c.id for c in reversed(made)]
        assert {c.status for c in (await repo.list_calls(org.id, status="failed")).calls} == {"failed"}
        assert len((await repo.list_calls(org.id, campaign_id=campaign.id)).calls) == 3
        window = await repo.list_calls(org.id, since=base + timedelta(minutes=2), until=base + timedelta(minutes=4))
        assert [c.id for c in window.calls] == [made[3].id, made[2].id]
    finally:
        await repo.close()


async def test_answered_calls_for_the_sweep_skip_excluded_ones_before_the_limit(settings):
    # More of the sweeping instance's own live streams than the limit must not hide a call whose
    # stream lapsed behind them; a call no longer answered is not listed.
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation("A")
        base = datetime(2001, 1, 1, tzinfo=UTC)  # older than any other test's answered call
        made = [await repo.create_call(_call(org.id, status="answered", answered_at=base + timedelta(seconds=i),
                                             call_control_id=f"v3:sweep-{uuid4()}")) for i in range(5)]
        await repo.update_call(made[4].id, lambda c: c.model_copy(update={"status": "completed"}))
        before = base + timedelta(seconds=10)
        listed = await repo.list_answered_calls(before, limit=2, excluding={made[0].id, made[1].id})
        assert [c.id for c in listed] == [made[2].id, made[3].id]
        assert listed[0].call_control_id == made[2].call_control_id  # whole rows, decoded
        assert await repo.list_answered_calls(before, limit=2, excluding={c.id for c in made}) == []
        assert [c.id for c in await repo.list_answered_calls(base + timedelta(seconds=2))] == [made[0].id, made[1].id]
    finally:
        await repo.close()


async def test_turns_are_sealed_and_upserted(settings):
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation("A")
        call = await repo.create_call(_call(org.id))
        for i, text in enumerate(["hello there", "my card is blue"]):
            await repo.upsert_turn(Turn(call_id=call.id, org_id=org.id, index=i, caller_text=text,
                                        agent_text=f"reply {i}", latency={"turn_latency_ms": 300 + i},
                                        created_at=utcnow()))
        await repo.upsert_turn(Turn(call_id=call.id, org_id=org.id, index=1, caller_text="my card is red",
                                    agent_text="ok", interrupted=True, latency={}, created_at=utcnow()))
        turns = await repo.list_turns(call.id)
        assert [(t.index, t.caller_text, t.interrupted) for t in turns] == [
            (0, "hello there", False), (1, "my card is red", True)]
        assert turns[0].latency == {"turn_latency_ms": 300}
        dump = await dump_database(repo)
        assert "hello there" not in dump and "card is red" not in dump
    finally:
        await repo.close()


async def test_a_turn_keeps_how_it_ended_and_an_upsert_replaces_it(settings):
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation("A")
        call = await repo.create_call(_call(org.id))
        await repo.upsert_turn(Turn(call_id=call.id, org_id=org.id, index=0, caller_text="my order number is",
                                    agent_text="Go on.", created_at=utcnow(), end_reason="hold_ran_out",
                                    hold="unsure", contour=True, speculation="kept", merged=True))
        await repo.upsert_turn(Turn(call_id=call.id, org_id=org.id, index=1, caller_text="hi", agent_text="hello",
                                    created_at=utcnow()))  # no account (a turn recorded before it was kept)
        held, plain = await repo.list_turns(call.id)
        assert (held.end_reason, held.hold, held.contour, held.speculation, held.merged) == (
            "hold_ran_out", "unsure", True, "kept", True)
        assert (plain.end_reason, plain.hold, plain.contour, plain.speculation, plain.merged) == (
            None, None, False, None, False)
        await repo.upsert_turn(held.model_copy(update={"end_reason": "noise", "hold": None, "contour": False,
                                                       "speculation": "restarted", "merged": False}))
        again = (await repo.list_turns(call.id))[0]
        assert (again.end_reason, again.hold, again.contour, again.speculation, again.merged) == (
            "noise", None, False, "restarted", False)
    finally:
        await repo.close()


async def test_events_insert_once_claim_complete_and_retry(settings):
    repo = await open_repository(settings)
    try:
        event_id = str(uuid4())
        event = StoredEvent(event_id=event_id, event_type="call.answered", occurred_at=utcnow(),
                            call_control_id="v3:x", payload={"to": "+14155550199"}, received_at=utcnow())
        assert await repo.insert_event(event) is True
        assert await repo.insert_event(event) is False
        claimed = [e for e in await repo.claim_events(limit=100, lease_s=60) if e.event_id == event_id]
        assert claimed and claimed[0].payload == {"to": "+14155550199"} and claimed[0].attempts == 1
        # Claimed and within its lease: nobody else takes it.
        assert event_id not in {e.event_id for e in await repo.claim_events(limit=100, lease_s=60)}
        # A crashed worker's claim expires.
        later = utcnow() + timedelta(seconds=61)
        assert event_id in {e.event_id for e in await repo.claim_events(limit=100, lease_s=60, now=later)}
        await repo.retry_event(event_id, error="boom", retry_in_s=0, lease_s=60)
        retried = [e for e in await repo.claim_events(limit=100, lease_s=60) if e.event_id == event_id]
        assert retried and retried[0].last_error == "boom" and retried[0].attempts == 3
        await repo.complete_event(event_id, org_id=None, call_id=None)
        assert (await repo.get_event(event_id)).processed_at is not None
        assert event_id not in {e.event_id for e in await repo.claim_events(limit=100, lease_s=0, now=later)}
        assert "+14155550199" not in await dump_database(repo)
    finally:
        await repo.close()


async def test_dnc_entries_store_only_the_hash(settings):
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation("A")
        other = await repo.create_organisation("B")
        assert await repo.add_dnc(org.id, "+14155550111", reason="asked") is True
        assert await repo.add_dnc(org.id, "+14155550111") is False
        assert (await repo.get_dnc(org.id, "+14155550111")).reason == "asked"
        assert await repo.get_dnc(other.id, "+14155550111") is None
        added = await repo.add_dnc_many(org.id, [("+14155550111", None), ("+14155550112", None),
                                                 ("+14155550113", "x")], source="import")
        assert added == 2
        assert await repo.remove_dnc(org.id, "+14155550112") is True
        assert await repo.remove_dnc(org.id, "+14155550112") is False
        assert "14155550111" not in await dump_database(repo)
    finally:
        await repo.close()


async def test_phone_numbers_are_unique_and_route_inbound(settings):
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation("A")
        number = "+1312555" + str(uuid4().int)[:4]
        await repo.add_phone_number(org.id, number, {"personality": "receptionist"})
        with pytest.raises(Conflict):
            await repo.add_phone_number(org.id, number, {})
        found = await repo.find_phone_number(number)
        assert found.org_id == org.id and found.agent_config == {"personality": "receptionist"}
        assert [n.number for n in await repo.list_phone_numbers(org.id)] == [number]
        other = await repo.create_organisation("B")
        assert await repo.update_phone_number(other.id, number, {"personality": "x"}) is None  # not B's
        updated = await repo.update_phone_number(org.id, number, {"personality": "sales", "language": "en-GB"})
        assert updated.agent_config == {"personality": "sales", "language": "en-GB"} and updated.id == found.id
        assert (await repo.find_phone_number(number)).agent_config == updated.agent_config
        assert await repo.update_phone_number(org.id, "+13125550999", {}) is None
    finally:
        await repo.close()


async def test_erase_phone_removes_personal_data_and_keeps_hashes(settings):
    repo = await open_repository(settings)
    keys = load_data_keys(settings)
    try:
        org = await repo.create_organisation("A")
        other = await repo.create_organisation("B")
        subject = "+442071838750"
        call = await repo.create_call(_call(org.id, to=subject, call_control_id="v3:erase-me",
                                            agent_config={"personality": "call Jane at +442071838750"}))
        await repo.update_call(call.id, lambda c: c.model_copy(update={
            "summary": "Jane will pay", "outcome": {"name": "Jane"}, "recording_url": "https://rec/1.mp3",
            "recording_id": "rec-1", "error": {"detail": "bad number +442071838750"}}))
        await repo.upsert_turn(Turn(call_id=call.id, org_id=org.id, index=0, caller_text="I am Jane",
                                    agent_text="Hi Jane", created_at=utcnow()))
        kept = await repo.create_call(_call(org.id, to="+14155550100"))
        theirs = await repo.create_call(_call(other.id, to=subject))
        event = StoredEvent(event_id=str(uuid4()), event_type="call.transcription", occurred_at=utcnow(),
                            call_control_id="v3:erase-me", call_id=call.id, org_id=org.id,
                            payload={"to": subject, "call_control_id": "v3:erase-me",
                                     "transcription_data": {"transcript": "I am Jane"}},
                            to_hash=repo.hash_phone(subject), received_at=utcnow())
        await repo.insert_event(event)
        campaign = await make_campaign(repo, org.id, "c")
        await add_contact(repo, org.id, campaign.id, subject, {"first_name": "Jane"})
        await repo.add_dnc(org.id, subject)

        result = await repo.erase_phone(org.id, subject)
        assert (result.calls, result.transcripts, result.summaries, result.recordings, result.call_events,
                result.campaign_contacts) == (1, 1, 1, 1, 1, 1)
        assert result.call_control_ids == ("v3:erase-me",) and result.recording_ids == ("rec-1",)

        erased = await repo.get_call(org.id, call.id)
        assert erased.to_number is None and erased.to_hash == repo.hash_phone(subject)
        assert erased.from_number == "+14155550100"  # the organisation's own number is not the subject's
        assert erased.summary is None and erased.outcome is None and erased.recording_url is None
        assert erased.erased_at is not None and erased.agent_config == {}
        assert (await repo.list_turns(call.id))[0].caller_text is None
        stored = await repo.get_event(event.event_id)
        assert stored.payload["to"] == repo.hash_phone(subject) and "transcription_data" not in stored.payload
        assert (await CampaignStore(repo).contacts(campaign.id))[0].phone is None
        assert await repo.get_dnc(org.id, subject) is not None  # erasure must not make it callable
        assert (await repo.get_call(org.id, kept.id)).to_number == "+14155550100"
        assert (await repo.get_call(other.id, theirs.id)).to_number == subject  # other organisation untouched
        assert [e.counts["calls"] for e in await repo.list_erasures(org.id)] == [1]

        from .helpers import open_sealed

        # Every sealed value in the database, opened: only the other organisation's call still has the number.
        dump = open_sealed(await dump_database(repo), keys.cipher)
        assert dump.count(subject) == 1
        assert "Jane" not in dump
    finally:
        await repo.close()


async def test_without_auto_migrate_an_old_schema_is_refused(tmp_path):
    from control_plane.settings import Settings
    from control_plane.store import MigrationError

    from .conftest import make_settings

    settings = make_settings(tmp_path, store={"auto_migrate": False})
    with pytest.raises(MigrationError, match="not migrated"):
        await open_repository(settings)
    assert await migrate(settings) == [m.version for m in load_migrations("sqlite")]
    repo = await open_repository(settings)
    await repo.close()
    # An applied migration edited afterwards is refused rather than silently skipped.
    import aiosqlite

    async with aiosqlite.connect(tmp_path / settings.store.sqlite_filename) as db:
        await db.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        await db.commit()
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(settings)
    assert isinstance(settings, Settings)
