"""Answering machines on every call (issue 18, item 5): an API-started call with
answering_machine_detection is dialled without its stream, so no agent talks to a machine; on a
person the stream starts after the verdict, on a machine the call's voicemail policy runs
(the message after the beep, or a hang-up). Against the Telnyx emulator, over real sockets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

from bench.telnyx_emulator import NumberBehaviour
from control_plane.app import METRICS_KEY
from control_plane.store import Call, utcnow
from control_plane.webhooks.events import call_events

from .conftest import make_settings
from .test_emulator_e2e import _async, _backend, _eventually, _system

AGENT = {"personality": "friendly", "voice": "natural_hd", "language": "en", "max_duration_s": 120}
MACHINE, PERSON = "+14155550177", "+14155550123"


def _factory(settings: Any):
    return lambda **kw: make_settings(settings.data_dir, backend=_backend(settings),
                                      pg_schema=settings.store.schema_name, **kw)


async def _start(client, headers, to: str, **fields: Any) -> dict[str, Any]:
    body = {"to": to, "from": "+14155550100", "agent_config": {**AGENT, **fields.pop("agent", {})}, **fields}
    response = await client.post("/api/calls/start", json=body, headers=headers)
    started = await response.json()
    assert response.status == 201, started
    return started


async def _detail(client, headers, call_id: str, status: str) -> dict[str, Any]:
    async def reached() -> Any:
        detail = await (await client.get(f"/api/calls/{call_id}", headers=headers)).json()
        return detail if detail["status"] == status else None

    return await _eventually(reached, timeout=10.0)


def _actions(emulator, ccid: str, action: str) -> list[Any]:
    return [r for r in emulator.requests if r.path.endswith(f"/{ccid}/actions/{action}")]


async def test_a_machine_gets_the_calls_voicemail_and_never_an_agent(settings):
    async with _system(_factory(settings)) as (emulator, client, headers, _org):
        emulator.set_number_behaviour(MACHINE, NumberBehaviour(answer="voicemail"))
        started = await _start(client, headers, MACHINE, answering_machine_detection="detect_beep", agent={
            "variables": {"name": "Ann"},
            "voicemail": {"action": "message", "message": "Hi {name}, please call us back.", "language": "en-US"}})
        ccid = started["call_control_id"]
        params = emulator.calls[ccid].params
        assert "stream_url" not in params and params["answering_machine_detection"] == "detect_beep"

        detail = await _detail(client, headers, started["call_id"], "completed")
        (speak,) = _actions(emulator, ccid, "speak")
        assert speak.body["payload"] == "Hi Ann, please call us back." and speak.body["language"] == "en-US"
        assert emulator.calls[ccid].hangup_source == "caller"  # we hung up once the message was spoken
        assert detail["amd_result"] == "machine/beep_detected"
        types = [e["type"] for e in detail["events"]]
        assert types.index("call.machine.greeting.ended") < types.index("call.speak.ended")
        assert not any(t.startswith("streaming.") for t in types)  # no agent ever talked to the machine
        assert not _actions(emulator, ccid, "streaming_start")
        assert len(client.app[METRICS_KEY].sessions.live) == 0


async def test_a_machine_is_hung_up_on_when_the_call_has_no_voicemail(settings):
    async with _system(_factory(settings)) as (emulator, client, headers, _org):
        emulator.set_number_behaviour(MACHINE, NumberBehaviour(answer="voicemail"))
        started = await _start(client, headers, MACHINE, answering_machine_detection="detect")
        detail = await _detail(client, headers, started["call_id"], "completed")
        assert detail["amd_result"] == "machine"
        assert emulator.calls[started["call_control_id"]].hangup_source == "caller"
        assert not _actions(emulator, started["call_control_id"], "speak")
        assert not _actions(emulator, started["call_control_id"], "streaming_start")


async def test_a_person_gets_the_agent_once_the_verdict_is_in(settings):
    async with _system(_factory(settings)) as (emulator, client, headers, _org):
        started = await _start(client, headers, PERSON, answering_machine_detection="detect")
        ccid = started["call_control_id"]
        assert "stream_url" not in emulator.calls[ccid].params

        async def streaming() -> Any:
            detail = await (await client.get(f"/api/calls/{started['call_id']}", headers=headers)).json()
            return detail if "streaming.started" in [e["type"] for e in detail["events"]] else None

        detail = await _eventually(streaming, timeout=10.0)
        assert detail["amd_result"] == "human"
        types = [e["type"] for e in detail["events"]]
        assert types.index("call.machine.detection.ended") < types.index("streaming.started")
        (start,) = _actions(emulator, ccid, "streaming_start")
        port = client.server.port
        assert start.body["stream_url"].startswith(f"ws://127.0.0.1:{port}/media-stream?token={started['call_id']}.")
        await _eventually(lambda: _async(len(client.app[METRICS_KEY].sessions.live) >= 1))
        await client.post(f"/api/calls/{started['call_id']}/hangup", headers=headers)
        await _detail(client, headers, started["call_id"], "completed")


async def test_a_call_without_detection_streams_from_the_dial(settings):
    async with _system(_factory(settings)) as (emulator, client, headers, _org):
        started = await _start(client, headers, PERSON)
        assert emulator.calls[started["call_control_id"]].params["stream_url"]
        await client.post(f"/api/calls/{started['call_id']}/hangup", headers=headers)


async def test_bad_voicemail_policies_are_refused_at_the_api(settings):
    async with _system(_factory(settings)) as (emulator, client, headers, _org):
        for voicemail in ({"action": "message"}, {"action": "message", "message": "hi", "language": "en"},
                          {"action": "shout"}):
            body = {"to": PERSON, "from": "+14155550100", "answering_machine_detection": "detect",
                    "agent_config": {**AGENT, "voicemail": voicemail}}
            response = await client.post("/api/calls/start", json=body, headers=headers)
            assert response.status in (400, 422), voicemail
            assert "voicemail" in await response.text()
        assert emulator.dial_log == []


def test_the_verdict_is_an_event_for_the_organisations_app():
    now = utcnow()
    call = Call(id=uuid4(), org_id=uuid4(), direction="outbound", to_number=PERSON, from_number=PERSON,
                status="answered", created_at=now, updated_at=now, answered_at=now)
    machine = call.model_copy(update={"amd_result": "machine", "updated_at": now + timedelta(seconds=2)})
    assert call_events(call, machine) == [("call.machine_detection", {
        "call_id": str(call.id), "result": "machine", "machine": True})]
    beep = machine.model_copy(update={"amd_result": "machine/beep_detected"})
    assert call_events(machine, beep)[0][1]["result"] == "machine/beep_detected"
    human = call.model_copy(update={"amd_result": "human_residence"})
    assert call_events(call, human)[0][1]["machine"] is False
    assert call_events(human, human) == []
