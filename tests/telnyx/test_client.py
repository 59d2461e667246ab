"""The Call Control client against the emulator, over real sockets."""

from __future__ import annotations

import logging
import socket
import time

import pytest
import telnyx
from telnyx.lib.webhooks_ed25519 import unwrap_with_ed25519

from control_plane.telnyx import (
    TelnyxApiError,
    TelnyxClient,
    TelnyxConnectionError,
    TelnyxRateLimited,
    verify_signature,
)
from control_plane.telnyx.client import _retry_after
from tests.fixtures.waiting import eventually

from .helpers import CONNECTION_ID, FROM, TO, world

SECRET = "KEY0188DEADBEEF_do-not-print-me"


def _posts(emulator, path_suffix: str):
    return [r for r in emulator.requests if r.method == "POST" and r.path.endswith(path_suffix)]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_dial_returns_the_call_and_signed_webhooks_follow(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM,
                               client_state="campaign-7:lead-42")
    call = emulator.calls[result.call_control_id]
    assert (result.call_leg_id, result.call_session_id) == (call.call_leg_id, call.call_session_id)
    assert result.is_alive is False
    assert [r.command_id for r in _posts(emulator, "/v2/calls")] == [result.command_id]
    assert [(e.to, e.from_, e.command_id) for e in emulator.dial_log] == [(TO, FROM, result.command_id)]

    initiated, = await sink.wait_for("call.initiated", result.call_control_id)
    answered, = await sink.wait_for("call.answered", result.call_control_id)
    sink.verify_all(emulator.public_key_b64)
    assert initiated.payload["direction"] == "outgoing"
    assert (initiated.payload["from"], initiated.payload["to"]) == (FROM, TO)
    assert initiated.payload["connection_id"] == CONNECTION_ID
    assert answered.payload["state"] == "answered"
    # client_state travels base64-encoded and comes back unchanged.
    assert answered.payload["client_state"] == "Y2FtcGFpZ24tNzpsZWFkLTQy"
    assert answered.client_state == b"campaign-7:lead-42"
    assert initiated.attempt == 1


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_hangup_twice_second_reports_already_ended(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    await sink.wait_for("call.answered", result.call_control_id)
    first = await client.hangup(result.call_control_id)
    second = await client.hangup(result.call_control_id)
    assert (first.already_ended, second.already_ended) == (False, True)
    assert first.command_id != second.command_id
    hangup, = await sink.wait_for("call.hangup", result.call_control_id)
    assert hangup.payload["hangup_cause"] == "normal_clearing"
    assert hangup.payload["hangup_source"] == "caller"
    await emulator.hooks.drain()
    assert len(sink.events("call.hangup")) == 1
    # Other commands on an ended call are errors, not "already ended".
    with pytest.raises(TelnyxApiError) as info:
        await client.speak(result.call_control_id, "hello")
    assert (info.value.status, info.value.code) == (422, "90018")


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_invalid_client_state_is_a_90017_api_error(telnyx_world) -> None:
    emulator, _sink, client = telnyx_world
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, client_state="ok")
    with pytest.raises(TelnyxApiError) as info:
        await client.action(result.call_control_id, "client_state_update", client_state="not base64!")
    error = info.value
    assert (error.status, error.code) == (422, "90017")
    assert error.title and "90017" in str(error)
    assert error.errors[0]["source"] == {"pointer": "/client_state"}
    assert emulator.calls[result.call_control_id].client_state == "b2s="  # unchanged
    with pytest.raises(TelnyxApiError) as info:
        await client.action(result.call_control_id, "speak", payload="hi", voice="female",
                            client_state="%%%")
    assert info.value.code == "90017"


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_unknown_call_is_404_90015(telnyx_world) -> None:
    _emulator, _sink, client = telnyx_world
    with pytest.raises(TelnyxApiError) as info:
        await client.hangup("v3:no-such-call")
    assert (info.value.status, info.value.code) == (404, "90015")
    with pytest.raises(TelnyxApiError) as info:
        await client.get_call("v3:no-such-call")
    assert info.value.code == "90015"


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_bad_key_is_401_and_the_key_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        async with world() as (emulator, _sink, _), TelnyxClient(SECRET, base_url=emulator.base_url) as client:
            assert SECRET not in repr(client)
            with pytest.raises(TelnyxApiError) as info:
                await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
            error = info.value
            assert (error.status, error.code, error.title) == (401, "10009", "Authentication failed")
            for text in (str(error), repr(error), repr(error.args), repr(error.errors)):
                assert SECRET not in text
            assert emulator.dial_log == []
    assert SECRET not in caplog.text


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_5xx_is_resent_with_the_same_command_id_and_runs_once(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    emulator.faults.fail_next(1, status=500, match="/v2/calls")
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    attempts = _posts(emulator, "/v2/calls")
    assert [r.status for r in attempts] == [500, 200]
    assert {r.command_id for r in attempts} == {result.command_id}
    assert len(emulator.dial_log) == 1 and emulator.dialled_more_than_once() == {}

    emulator.faults.fail_next(2, status=503, match="/actions/")
    hung = await client.hangup(result.call_control_id)
    attempts = _posts(emulator, "/actions/hangup")
    assert [r.status for r in attempts] == [503, 503, 200]
    assert {r.command_id for r in attempts} == {hung.command_id}
    await sink.wait_for("call.hangup", result.call_control_id)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_5xx_on_every_attempt_gives_up_after_max_attempts(telnyx_world) -> None:
    emulator, _sink, client = telnyx_world
    emulator.faults.fail_next(10, status=502)
    with pytest.raises(TelnyxApiError) as info:
        await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    assert info.value.status == 502
    assert len(_posts(emulator, "/v2/calls")) == client.max_attempts == 3
    assert emulator.dial_log == []


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_slow_response_is_resent_after_500_ms_and_not_executed_twice(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    # The first reply is held 2 s, four attempt timeouts (500 ms): the client must not wait for it.
    emulator.faults.slow_next(1, delay_s=2.0, match="/v2/calls")
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    # The dial came back while the first reply is still held: from the resend, answered from the
    # dedupe table (the emulator logs a request when it answers it).
    (answered,) = _posts(emulator, "/v2/calls")
    assert answered.command_id == result.command_id
    await eventually(lambda: len(_posts(emulator, "/v2/calls")) == 2, what="the held first reply")
    attempts = _posts(emulator, "/v2/calls")
    assert len(attempts) == 2 and {r.command_id for r in attempts} == {result.command_id}
    assert len(emulator.dial_log) == 1 and len(emulator.calls) == 1
    assert emulator.dial_log[0].call_control_id == result.call_control_id

    await sink.wait_for("call.answered", result.call_control_id)
    emulator.faults.slow_next(1, delay_s=2.0, match="/actions/hangup")
    hung = await client.hangup(result.call_control_id)
    assert not hung.already_ended  # the duplicate got the first (successful) reply
    await eventually(lambda: len(_posts(emulator, "/actions/hangup")) == 2, what="the held hangup reply")
    await emulator.hooks.drain()
    assert len(sink.events("call.hangup")) == 1


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_4xx_is_not_retried(telnyx_world) -> None:
    emulator, _sink, client = telnyx_world
    with pytest.raises(TelnyxApiError) as info:
        await client.dial(connection_id=CONNECTION_ID, to="", from_=FROM)
    assert (info.value.status, info.value.code) == (422, "10004")
    assert len(_posts(emulator, "/v2/calls")) == 1


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_429_raises_rate_limited_with_retry_after(telnyx_world) -> None:
    emulator, _sink, client = telnyx_world
    emulator.set_rate_limit(1, window_s=2.0)
    await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    with pytest.raises(TelnyxRateLimited) as info:
        await client.dial(connection_id=CONNECTION_ID, to="+15550100003", from_=FROM)
    limited = info.value
    assert (limited.status, limited.code) == (429, "10011")
    assert limited.retry_after_s is not None and 0 < limited.retry_after_s <= 2
    assert len(_posts(emulator, "/v2/calls")) == 2  # not retried
    assert len(emulator.dial_log) == 1
    assert limited.after_unanswered is False  # its only try was refused: nothing ran


async def test_a_429_after_an_unanswered_try_says_the_first_may_have_run(telnyx_world) -> None:
    emulator, _sink, client = telnyx_world
    emulator.faults.slow_next(1, delay_s=2.0, match="/v2/calls")  # runs, answers late
    emulator.set_rate_limit(1, window_s=60.0)  # the client's re-send is refused
    with pytest.raises(TelnyxRateLimited) as info:
        await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    assert info.value.after_unanswered is True
    assert len(emulator.dial_log) == 1  # the first try did dial


def test_retry_after_header_parsing() -> None:
    assert _retry_after({"x-ratelimit-reset": "7"}) == 7
    assert _retry_after({"retry-after": "2.5"}) == 2.5
    assert _retry_after({"x-ratelimit-reset": "soon", "retry-after": "3"}) == 3
    assert 55 <= _retry_after({"x-ratelimit-reset": str(int(time.time()) + 60)}) <= 60  # an epoch instant
    assert _retry_after({}) is None


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_connection_refused_becomes_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async with TelnyxClient(SECRET, base_url=f"http://127.0.0.1:{port}/v2", max_attempts=2) as client:
        with pytest.raises(TelnyxConnectionError) as info:
            await client.hangup("v3:x")
        assert "attempt 2 of 2" in str(info.value)
        assert SECRET not in str(info.value)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_duplicate_command_ids_are_ignored_by_the_emulator(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    first = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, command_id="dial-lead-42")
    again = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, command_id="dial-lead-42")
    assert again.call_control_id == first.call_control_id
    assert len(emulator.dial_log) == 1 and emulator.dialled_more_than_once() == {}
    await sink.wait_for("call.answered", first.call_control_id)
    one = await client.hangup(first.call_control_id, command_id="bye-1")
    two = await client.hangup(first.call_control_id, command_id="bye-1")
    assert not one.already_ended and not two.already_ended
    three = await client.hangup(first.call_control_id, command_id="bye-2")
    assert three.already_ended
    await emulator.hooks.drain()
    assert len(sink.events("call.hangup")) == 1
    # A new command_id is a new dial: the log shows the number was dialled twice.
    await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, command_id="dial-lead-42-retry")
    assert emulator.dialled_more_than_once() == {TO: 2}


async def test_the_official_sdk_drives_the_emulator_and_parses_its_webhooks(telnyx_world) -> None:
    emulator, sink, _ = telnyx_world
    sdk = telnyx.AsyncTelnyx(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    try:
        dialled = await sdk.calls.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM,
                                       client_state="aGVsbG8=", command_id="sdk-1")
        ccid = dialled.data.call_control_id
        assert dialled.data.is_alive is False and dialled.data.client_state == "aGVsbG8="
        await sink.wait_for("call.answered", ccid)
        assert (await sdk.calls.actions.hangup(ccid)).data.result == "ok"
        with pytest.raises(telnyx.UnprocessableEntityError) as info:
            await sdk.calls.actions.hangup(ccid)
        assert info.value.body["errors"][0]["code"] == "90018"
        await sink.wait_for("call.hangup", ccid)
        kinds = []
        for received in sink.received:
            verify_signature(received.body, received.headers, emulator.public_key_b64)
            event = unwrap_with_ed25519(sdk, received.body, received.headers, key=emulator.public_key_b64)
            kinds.append(type(event).__name__)
        assert kinds == ["CallInitiatedWebhookEvent", "CallAnsweredWebhookEvent", "CallHangupWebhookEvent"]
    finally:
        await sdk.close()

