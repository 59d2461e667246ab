"""Operator functions (CLI), the pipeline's CallRecorder, recording and PCI helpers."""

from __future__ import annotations

import uuid

import pytest

from control_plane import admin
from control_plane.pipeline import StoreReporter
from control_plane.recorder import UnknownCall
from control_plane.store import Turn, utcnow
from control_plane.streamauth import StreamCredential
from control_plane.webhooks.events import turn_event
from engine.conversation.ports import TurnRecord
from engine.timeline import TurnTimeline
from engine.turn_outcome import Hold, Speculation, TurnEnd, TurnOutcome
from tests.fixtures.servers import sqlite_only

from .fakes import harness
from .helpers import dump_database


async def test_admin_functions_create_an_organisation_whose_key_works(settings):
    org, secret = await admin.create_organisation("  Acme Ltd ", settings=settings)
    assert org.name == "Acme Ltd" and secret.startswith("ck_")
    (key,) = await admin.list_api_keys(org.id, settings=settings)
    assert secret.startswith(key.prefix) and key.revoked_at is None
    second, second_secret = await admin.create_api_key(org.id, "ops", settings=settings)
    async with harness(settings) as h:
        for token in (secret, second_secret):
            assert (await h.client.get("/api/calls", headers={"Authorization": f"Bearer {token}"})).status == 200
    assert (await admin.revoke_api_key(org.id, key.id, settings=settings)).revoked_at is not None
    assert await admin.revoke_api_key(uuid.uuid4(), second.id, settings=settings) is None
    async with harness(settings) as h:
        assert (await h.client.get("/api/calls", headers={"Authorization": f"Bearer {secret}"})).status == 401
        assert (await h.client.get("/api/calls", headers={"Authorization": f"Bearer {second_secret}"})).status == 200
        assert secret not in await dump_database(await h.cp.repository())
    number = await admin.add_phone_number(org.id, "+1 312 555 0142", {"personality": "professional",
                                                                      "first_message": "Hello"}, settings=settings)
    assert number.number == "+13125550142"
    assert [n.number for n in await admin.list_phone_numbers(org.id, settings=settings)] == ["+13125550142"]
    with pytest.raises(ValueError):
        await admin.create_organisation("", settings=settings)
    with pytest.raises(LookupError):
        await admin.create_api_key(uuid.uuid4(), settings=settings)
    with pytest.raises(ValueError):
        await admin.set_organisation_settings(org.id, settings=settings, record_calls="yes")
    updated = await admin.set_organisation_settings(org.id, settings=settings, record_calls=True)
    assert updated.settings == {"record_calls": True}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_recorder_finds_the_call_and_stores_turns_summary_and_outcome(h):
    _, headers = await h.org()
    started = await (await h.start_call(headers, agent_config={"personality": "sales", "voice": "natural_hd",
                                                               "language": "en", "first_message": "Hi!"})).json()
    ccid = started["call_control_id"]
    recorder = h.cp.recorder
    by_id = await recorder.lookup(ccid)
    by_credential = await recorder.bind(StreamCredential("call", uuid.UUID(started["call_id"])), ccid)
    assert by_id == by_credential and str(by_id.call_id) == started["call_id"]
    assert by_id.agent_config["first_message"] == "Hi!" and by_id.to_number == "+14155550123"
    assert await recorder.lookup("v3:nope") is None

    timeline = TurnTimeline(0)
    for name, t in (("speech_end", 10.0), ("turn_end", 10.3), ("stt_final", 10.32), ("llm_request", 10.33),
                    ("llm_first_token", 10.5), ("tts_request", 10.51), ("tts_first_audio", 10.6),
                    ("first_frame_sent", 10.62)):
        timeline.stamp(name, t)
    timeline.outcome = TurnOutcome(TurnEnd.HOLD_RAN_OUT, Speculation.KEPT, Hold.UNSURE, contour=True)
    await recorder.record_turn(ccid, 0, caller_text="Is it expensive?", agent_text="Not at all.",
                               latency=timeline)
    await recorder.record_turn(ccid, 1, caller_text="Ok", agent_text="Great—", interrupted=True,
                               latency={"turn_latency_ms": 401.0},
                               outcome=TurnOutcome(TurnEnd.NOISE, merged=True))
    await recorder.finish(ccid, summary="Interested, wants a demo", outcome={"demo": True})
    detail = await (await h.client.get(f"/api/calls/{started['call_id']}", headers=headers)).json()
    first, second = detail["turns"]
    assert first["latency"]["turn_latency_ms"] == pytest.approx(620.0)
    assert first["latency"]["stages_ms"]["llm_first_token"] == pytest.approx(170.0)
    assert second["interrupted"] is True and second["agent_text"] == "Great—"
    # How each turn ended: from the timeline's account, or given.
    outcome = ("end_reason", "hold", "contour", "speculation", "merged")
    assert [first[k] for k in outcome] == ["hold_ran_out", "unsure", True, "kept", False]
    assert [second[k] for k in outcome] == ["noise", None, False, "none", True]
    assert detail["summary"] == "Interested, wants a demo" and detail["outcome"] == {"demo": True}
    with pytest.raises(UnknownCall):
        await recorder.record_turn("v3:nope", 0, caller_text="x", agent_text="y")


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_stream_that_beats_the_dial_response_gets_its_call(h):
    _, headers = await h.org()
    started = await (await h.start_call(headers)).json()
    repo = await h.cp.repository()
    call_id = uuid.UUID(started["call_id"])
    await repo.update_call(call_id, lambda c: c.model_copy(update={"call_control_id": None}))
    context = await h.cp.recorder.bind(StreamCredential("call", call_id), "v3:early")
    assert context.call_id == call_id
    assert (await repo.get_call_unscoped(call_id)).call_control_id == "v3:early"


@sqlite_only
async def test_recording_follows_the_organisation_setting_and_pci_window_pauses_it(h):
    org, headers = await h.org()
    repo = await h.cp.repository()
    plain = await (await h.start_call(headers)).json()
    await h.webhook("call.answered", {"call_control_id": plain["call_control_id"]})
    await h.settle()
    assert h.telnyx.named("record_start") == []
    assert await h.cp.recorder.pause_recording(plain["call_control_id"]) is False

    await repo.update_organisation_settings(org.id, {"record_calls": True})
    recorded = await (await h.start_call(headers)).json()
    opted_out = await (await h.start_call(headers, agent_config={"personality": "friendly", "voice": "natural_hd",
                                                                 "language": "en", "record": False})).json()
    for call in (recorded, opted_out):
        await h.webhook("call.answered", {"call_control_id": call["call_control_id"]})
    await h.settle()
    assert [c["call_control_id"] for c in h.telnyx.named("record_start")] == [recorded["call_control_id"]]

    with pytest.raises(RuntimeError):
        async with h.cp.recorder.pci_window(recorded["call_control_id"]) as paused:
            assert paused is True
            assert [c["call_control_id"] for c in h.telnyx.named("record_pause")] == [recorded["call_control_id"]]
            assert h.telnyx.named("record_resume") == []
            raise RuntimeError("payment tool failed")
    assert [c["call_control_id"] for c in h.telnyx.named("record_resume")] == [recorded["call_control_id"]]


async def test_dtmf_digits_are_never_stored(h):
    _, headers = await h.org()
    started = await (await h.start_call(headers)).json()
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    await h.webhook("call.dtmf.received", {"call_control_id": started["call_control_id"], "digit": "7"},
                    event_id=ids[0])
    await h.webhook("call.gather.ended", {"call_control_id": started["call_control_id"],
                                          "digits": "4111111111111111", "status": "valid"}, event_id=ids[1])
    await h.settle()
    repo = await h.cp.repository()
    dtmf, gather = [await repo.get_event(i) for i in ids]
    assert dtmf.payload["digit"] == "redacted"
    assert gather.payload["digits"] == "redacted" and gather.payload["digit_count"] == 16
    from .helpers import open_sealed

    assert "4111111111111111" not in open_sealed(await dump_database(repo), h.cp.keys.cipher)


def test_the_call_turn_event_says_how_the_turn_ended():
    turn = Turn(call_id=uuid.uuid4(), org_id=uuid.uuid4(), index=2, caller_text="When?", agent_text="Friday.",
                created_at=utcnow(), end_reason="confident", speculation="kept")
    kind, data = turn_event(turn)
    assert kind == "call.turn"
    assert {k: data[k] for k in ("end_reason", "hold", "contour", "speculation", "merged")} == {
        "end_reason": "confident", "hold": None, "contour": False, "speculation": "kept", "merged": False}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_engines_turn_record_is_stored_with_how_the_turn_ended(h):
    _, headers = await h.org()
    started = await (await h.start_call(headers)).json()
    reporter = StoreReporter(h.cp, {"call_id": uuid.UUID(started["call_id"])})
    await reporter.turn(started["call_control_id"], TurnRecord(
        index=1, caller_text="Is it four?", agent_text="Yes.", interrupted=False, timeline={},
        outcome=TurnOutcome(TurnEnd.CONFIDENT, Speculation.KEPT)))
    (turn,) = (await (await h.client.get(f"/api/calls/{started['call_id']}", headers=headers)).json())["turns"]
    assert (turn["end_reason"], turn["hold"], turn["speculation"]) == ("confident", None, "kept")
