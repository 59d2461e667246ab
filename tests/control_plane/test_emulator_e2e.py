"""End to end with the real TelnyxClient against the Telnyx emulator: REST dial and actions on
the wire, signed webhooks delivered to /webhook/telnyx, the media stream reaching our server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer, unused_port

from bench.telnyx_emulator import start_emulator
from control_plane.app import CONTROL_PLANE_KEY, METRICS_KEY, create_app
from control_plane.auth import issue_api_key
from control_plane.callstate import call_id_from_client_state
from tests.fixtures.waiting import eventually

from .conftest import make_settings

pytestmark = pytest.mark.e2e  # the app, the real client and the Telnyx emulator over sockets


async def _eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    return await eventually(check, timeout=timeout)


@asynccontextmanager
async def _system(settings_factory: Callable[..., Any], **emulator_options: Any
                  ) -> AsyncIterator[tuple[Any, TestClient, dict[str, str], Any]]:
    emulator = await start_emulator(time_scale=0.01, **emulator_options)
    port = unused_port()
    settings = settings_factory(
        telnyx_api_key=emulator.api_key, telnyx_api_base=emulator.base_url,
        telnyx_public_key=emulator.public_key_b64, server={"public_url": f"http://127.0.0.1:{port}"},
        webhooks={"poll_interval_s": 0.05},
    )
    app = create_app(settings)
    try:
        async with TestClient(TestServer(app, port=port)) as client:
            cp = app[CONTROL_PLANE_KEY]
            repo = await cp.repository()
            org = await repo.create_organisation("e2e")
            _, secret = await issue_api_key(repo, org.id, "e2e")
            yield emulator, client, {"Authorization": f"Bearer {secret}"}, org
    finally:
        await emulator.close()


async def test_outbound_call_through_the_emulator(settings):
    async with _system(lambda **kw: make_settings(settings.data_dir, backend=_backend(settings),
                                                  pg_schema=settings.store.schema_name, **kw)) as (
            emulator, client, headers, _org):
        body = {"to": "+14155550123", "from": "+14155550100",
                "agent_config": {"personality": "friendly", "voice": "natural_hd", "language": "en",
                                 "max_duration_s": 120}}
        started = await (await client.post("/api/calls/start", json=body, headers=headers)).json()
        assert started["status"] == "initiated", started
        (entry,) = emulator.dial_log
        assert entry.command_id == started["call_id"] and entry.to == "+14155550123"
        params = emulator.calls[started["call_control_id"]].params
        port = client.server.port
        assert params["stream_url"].startswith(f"ws://127.0.0.1:{port}/media-stream?token={started['call_id']}.")
        assert params["stream_auth_token"] in params["stream_url"]
        assert (params["stream_track"], params["stream_bidirectional_mode"], params["stream_bidirectional_codec"]) \
            == ("inbound_track", "rtp", "PCMU")
        assert params["webhook_url"] == f"http://127.0.0.1:{port}/webhook/telnyx"
        assert params["time_limit_secs"] == 120
        import base64

        assert str(call_id_from_client_state(base64.b64decode(params["client_state"]))) == started["call_id"]

        url = f"/api/calls/{started['call_id']}"

        async def answered() -> Any:
            detail = await (await client.get(url, headers=headers)).json()
            return detail if detail["status"] == "answered" else None

        detail = await _eventually(answered)
        assert detail["answered_at"] is not None
        # The emulator opened the media stream to our server.
        await _eventually(lambda: _async(len(client.app[METRICS_KEY].sessions.live) >= 1))

        hangup = await client.post(f"{url}/hangup", headers=headers)
        assert hangup.status == 200 and (await hangup.json())["success"] is True

        async def completed() -> Any:
            detail = await (await client.get(url, headers=headers)).json()
            return detail if detail["status"] == "completed" else None

        detail = await _eventually(completed)
        assert detail["hangup_cause"] == "normal_clearing" and detail["duration_s"] is not None
        assert {"call.initiated", "call.answered", "streaming.started", "call.hangup"} <= {
            e["type"] for e in detail["events"]}


async def test_busy_number_and_inbound_call_through_the_emulator(tmp_path):
    async with _system(lambda **kw: make_settings(tmp_path, **kw)) as (emulator, client, headers, org):
        emulator.set_number_behaviour("+14155550999", "busy")
        body = {"to": "+14155550999", "from": "+14155550100",
                "agent_config": {"personality": "friendly", "voice": "natural_hd", "language": "en"}}
        started = await (await client.post("/api/calls/start", json=body, headers=headers)).json()

        async def busy() -> Any:
            detail = await (await client.get(f"/api/calls/{started['call_id']}", headers=headers)).json()
            return detail["status"] == "busy"

        await _eventually(busy)

        repo = await client.app[CONTROL_PLANE_KEY].repository()
        await repo.add_phone_number(org.id, "+13125550100", {"personality": "receptionist"})
        inbound = emulator.incoming_call(from_="+14155550123", to="+13125550100", connection_id="1234567890",
                                         webhook_url=f"http://127.0.0.1:{client.server.port}/webhook/telnyx")

        async def answered() -> Any:
            calls = await (await client.get("/api/calls?status=answered", headers=headers)).json()
            return calls["data"]

        (call,) = await _eventually(answered)
        assert call["direction"] == "inbound" and call["from"] == "+14155550123"
        assert emulator.calls[inbound.call_control_id].answered
        assert emulator.calls[inbound.call_control_id].params["stream_bidirectional_mode"] == "rtp"
        inbound.hang_up()

        async def ended() -> Any:
            detail = await (await client.get(f"/api/calls/{call['id']}", headers=headers)).json()
            return detail["status"] == "completed"

        await _eventually(ended)


@pytest.mark.parametrize("event_fields", ["sdk", "docs"])
async def test_a_recording_reaches_its_call_with_or_without_a_call_control_id(tmp_path, event_fields):
    """call.recording.saved has no call_control_id in the SDK's model but has one in Telnyx's
    docs example (issue 15): the recording URL reaches the call either way."""
    async with _system(lambda **kw: make_settings(tmp_path, **kw), event_fields=event_fields) as (
            emulator, client, headers, _org):
        body = {"to": "+14155550123", "from": "+14155550100",
                "agent_config": {"personality": "friendly", "voice": "natural_hd", "language": "en", "record": True}}
        started = await (await client.post("/api/calls/start", json=body, headers=headers)).json()
        url = f"/api/calls/{started['call_id']}"
        ccid = started["call_control_id"]
        await _eventually(lambda: _async(emulator.calls[ccid]._recording is not None))
        await client.post(f"{url}/hangup", headers=headers)
        (saved,) = await _eventually(lambda: _async(emulator.events_for(ccid, "call.recording.saved")))
        assert ("call_control_id" in saved["payload"]) == (event_fields == "docs")

        async def recorded() -> Any:
            detail = await (await client.get(url, headers=headers)).json()
            return detail["recording_url"]

        assert (await _eventually(recorded)) == emulator.calls[ccid].recordings[0]


def _backend(settings: Any) -> str:
    return "postgres" if settings.database_url else "sqlite"


async def _async(value: Any) -> Any:
    return value
