"""The emulator's call lifecycle, commands and webhook delivery."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bench.telnyx_emulator import DeliverySwitches, NumberBehaviour
from control_plane.telnyx import TelnyxApiError, verify_signature

from .helpers import CONNECTION_ID, FROM, TO, MediaServer, world


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_busy_number_hangs_up_user_busy_without_answering(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    emulator.set_number_behaviour(TO, "busy")
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    hangup, = await sink.wait_for("call.hangup", result.call_control_id)
    assert (hangup.payload["hangup_cause"], hangup.payload["sip_hangup_cause"]) == ("user_busy", "486")
    assert hangup.payload["hangup_source"] == "callee"
    assert hangup.payload["call_quality_stats"] is None
    assert sink.types(result.call_control_id) == ["call.initiated", "call.hangup"]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_unanswered_number_times_out_after_timeout_secs() -> None:
    async with world(time_scale=0.05) as (emulator, sink, client):
        emulator.set_number_behaviour(TO, NumberBehaviour(answer="no_answer", ring_s=1.0))
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, timeout_secs=8)
        hangup, = await sink.wait_for("call.hangup", result.call_control_id)
        assert loop.time() - started == pytest.approx(8 * 0.05)  # virtual time: exactly the scaled timeout
        assert hangup.payload["hangup_cause"] == "timeout"
        assert "call.answered" not in sink.types()
        # Hanging up while it rings cancels the attempt.
        other = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, timeout_secs=30)
        await client.hangup(other.call_control_id)
        cancelled, = await sink.wait_for("call.hangup", other.call_control_id)
        assert cancelled.payload["hangup_cause"] == "originator_cancel"


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_time_limit_counts_from_the_answer_in_real_time() -> None:
    # Telnyx ends the leg time_limit_secs "after being answered". The limit bounds the answered
    # call, whose media is real time, so a time-scaled emulator must not shrink it: here a
    # scaled limit would be 20 ms, and one counted from the dial would end the call while it rang.
    async with world(time_scale=0.01) as (emulator, sink, client):
        emulator.set_number_behaviour(TO, NumberBehaviour(answer="human", ring_s=100.0))  # 1 s, scaled
        loop = asyncio.get_running_loop()
        result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, time_limit_secs=2)
        await sink.wait_for("call.answered", result.call_control_id)
        answered = loop.time()
        assert (await client.get_call(result.call_control_id))["is_alive"] is True
        hangup, = await sink.wait_for("call.hangup", result.call_control_id)
        assert loop.time() - answered == pytest.approx(2, abs=0.05)  # virtual time: the limit, unscaled
        assert hangup.payload["hangup_cause"] == "time_limit"
        assert sink.types(result.call_control_id) == ["call.initiated", "call.answered", "call.hangup"]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_voicemail_with_amd_reports_machine_then_the_beep(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    emulator.set_number_behaviour(TO, "voicemail")
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM,
                               answering_machine_detection="detect_beep")
    greeting, = await sink.wait_for("call.machine.greeting.ended", result.call_control_id)
    assert greeting.payload["result"] == "beep_detected"
    detection, = sink.events("call.machine.detection.ended", result.call_control_id)
    assert detection.payload["result"] == "machine"
    assert sink.types(result.call_control_id) == [
        "call.initiated", "call.answered", "call.machine.detection.ended", "call.machine.greeting.ended"]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_amd_on_a_human_and_premium_amd_on_voicemail(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    human = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM,
                              answering_machine_detection="detect")
    detection, = await sink.wait_for("call.machine.detection.ended", human.call_control_id)
    assert detection.payload["result"] == "human"

    emulator.set_number_behaviour("+15550100009", "voicemail")
    machine = await client.dial(connection_id=CONNECTION_ID, to="+15550100009", from_=FROM,
                                answering_machine_detection="premium")
    await sink.wait_for("call.machine.premium.greeting.ended", machine.call_control_id)
    premium, = sink.events("call.machine.premium.detection.ended", machine.call_control_id)
    assert premium.payload["result"] == "machine"
    await asyncio.sleep(0.3)  # virtual time: time for a wrong webhook to arrive
    assert "call.machine.greeting.ended" not in sink.types(human.call_control_id)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_number_behaviour_over_the_control_api(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    async with aiohttp.ClientSession() as http:
        response = await http.put(f"{emulator.url}/_emulator/numbers/{TO}", json={"answer": "busy"})
        assert response.status == 200
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    hangup, = await sink.wait_for("call.hangup", result.call_control_id)
    assert hangup.payload["hangup_cause"] == "user_busy"


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_incoming_call_waits_for_answer_then_streams() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world() as (emulator, sink, client):
            async with aiohttp.ClientSession() as http:
                response = await http.post(f"{emulator.url}/_emulator/incoming",
                                           json={"from": "+15550109999", "to": "+15550100000",
                                                 "connection_id": CONNECTION_ID})
                ccid = (await response.json())["data"]["call_control_id"]
            initiated, = await sink.wait_for("call.initiated", ccid)
            assert (initiated.payload["direction"], initiated.payload["state"]) == ("incoming", "parked")
            with pytest.raises(TelnyxApiError) as info:
                await client.speak(ccid, "too early")
            assert info.value.code == "90034"
            await asyncio.sleep(0.1)  # virtual time: time for a wrong webhook to arrive
            assert "call.answered" not in sink.types(ccid)  # it waits for the app

            await client.answer(ccid, stream_url=media.url, client_state="inbound-1")
            answered, = await sink.wait_for("call.answered", ccid)
            assert answered.client_state == b"inbound-1"
            session = await media.next_session()
            await session.wait(lambda: len(session.of("media")) >= 2)
            assert session.of("start")[0]["start"]["from"] == "+15550109999"

            await client.hangup(ccid)
            hangup, = await sink.wait_for("call.hangup", ccid)
            assert hangup.payload["hangup_source"] == "callee"  # the app answered, so it is the callee
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_incoming_call_rejected_or_abandoned() -> None:
    async with world(incoming_timeout_s=4.0) as (emulator, sink, client):
        rejected = emulator.incoming_call(from_="+15550109999", to="+15550100000", connection_id=CONNECTION_ID)
        await sink.wait_for("call.initiated", rejected.call_control_id)
        await client.reject(rejected.call_control_id, cause="USER_BUSY")
        hangup, = await sink.wait_for("call.hangup", rejected.call_control_id)
        assert hangup.payload["hangup_cause"] == "user_busy"

        abandoned = emulator.incoming_call(from_="+15550109998", to="+15550100000", connection_id=CONNECTION_ID)
        hangup, = await sink.wait_for("call.hangup", abandoned.call_control_id)  # 4 s x 0.05
        assert (hangup.payload["hangup_cause"], hangup.payload["hangup_source"]) == ("originator_cancel", "caller")

        outbound = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
        with pytest.raises(TelnyxApiError) as info:
            await client.answer(outbound.call_control_id)
        assert info.value.code == "90102"


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_webhooks_are_retried_after_a_500_and_resigned() -> None:
    async with world(switches=DeliverySwitches(backoff_s=0.05)) as (emulator, sink, client):
        sink.fail_first = 1
        result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
        attempts = await sink.wait_for("call.initiated", result.call_control_id, count=2)
        assert [e.attempt for e in attempts] == [1, 2]
        assert attempts[0].id == attempts[1].id
        sink.verify_all(emulator.public_key_b64)
        deliveries = [d for d in emulator.hooks.deliveries if d.event_type == "call.initiated"]
        assert [(d.attempt, d.status) for d in deliveries] == [(1, 500), (2, 200)]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_webhook_retries_stop_at_max_attempts_and_skip_other_4xx() -> None:
    switches = DeliverySwitches(backoff_s=0.01, max_attempts=3)
    async with world(switches=switches) as (emulator, sink, client):
        sink.status_for = lambda event: 503 if event.event_type == "call.initiated" else 403
        result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
        await sink.wait_for("call.answered", result.call_control_id)
        await emulator.hooks.drain()
        assert [e.attempt for e in sink.events("call.initiated")] == [1, 2, 3]
        assert [e.attempt for e in sink.events("call.answered")] == [1]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_duplicate_switch_delivers_every_event_twice() -> None:
    async with world(switches=DeliverySwitches(duplicate=1.0)) as (emulator, sink, client):
        result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
        await sink.wait_for("call.answered", result.call_control_id, count=2)
        await emulator.hooks.drain()
        ids = [e.id for e in sink.events()]
        assert len(ids) == 4 and all(ids.count(i) == 2 for i in ids)
        sink.verify_all(emulator.public_key_b64)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_reorder_switch_delivers_out_of_order() -> None:
    switches = DeliverySwitches(reorder_window=2, reorder_linger_s=1.0)
    async with world(switches=switches) as (emulator, sink, client):
        result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
        await sink.wait_for("call.initiated", result.call_control_id)
        await sink.wait_for("call.answered", result.call_control_id)
        emitted = [e["event_type"] for e in emulator.events]
        assert emitted == ["call.initiated", "call.answered"]
        assert sink.types() == ["call.answered", "call.initiated"]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_delay_switch_delivers_late() -> None:
    async with world(switches=DeliverySwitches(delay_s=0.4)) as (_emulator, sink, client):
        dialled_at = asyncio.get_running_loop().time()
        result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
        await sink.wait_for("call.initiated", result.call_control_id)
        assert sink.received[0].at - dialled_at == pytest.approx(0.4)  # virtual time: exactly the delay


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_speak_playback_recording_and_status(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, client_state="s1")
    ccid = result.call_control_id
    await sink.wait_for("call.answered", ccid)

    await client.speak(ccid, "Hello, this is a reminder about your appointment.", client_state="s2")
    ended, = await sink.wait_for("call.speak.ended", ccid)
    assert ended.payload["status"] == "completed" and ended.client_state == b"s2"
    assert sink.types(ccid)[-2:] == ["call.speak.started", "call.speak.ended"]
    with pytest.raises(TelnyxApiError) as info:
        await client.action(ccid, "speak", voice="female")
    assert (info.value.code, info.value.errors[0]["source"]) == ("10004", {"pointer": "/payload"})

    await client.playback_start(ccid, audio_url="https://example.com/hold.mp3")
    await client.playback_stop(ccid)
    stopped, = await sink.wait_for("call.playback.ended", ccid)
    assert stopped.payload["status"] == "cancelled"

    await client.record_start(ccid, format="wav", channels="dual")
    await client.record_pause(ccid)
    await client.record_resume(ccid)
    await client.record_stop(ccid)
    # The SDK's recording.saved has no call_control_id: the leg id says whose it is.
    saved, = await sink.wait_for("call.recording.saved")
    assert saved.payload["call_leg_id"] == result.call_leg_id and "call_control_id" not in saved.payload
    assert saved.payload["recording_urls"]["wav"].endswith(".wav")
    assert saved.payload["channels"] == "dual"

    await client.send_dtmf(ccid, "1234#")
    assert emulator.calls[ccid].sent_dtmf == ["1234#"]
    with pytest.raises(TelnyxApiError):
        await client.send_dtmf(ccid, "12x")

    status = await client.get_call(ccid)
    assert status["is_alive"] is True and status["record_type"] == "call"
    await client.speak(ccid, "A long goodbye " * 20)
    await sink.wait_for("call.speak.started", ccid, count=2)
    await client.hangup(ccid)
    await sink.wait_for("call.hangup", ccid)
    cut, = [e for e in sink.events("call.speak.ended", ccid) if e.payload["status"] != "completed"]
    assert cut.payload["status"] == "call_hangup"
    status = await client.get_call(ccid)
    assert status["is_alive"] is False and isinstance(status["call_duration"], int)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_gather_times_out_and_can_be_stopped(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    ccid = result.call_control_id
    await sink.wait_for("call.answered", ccid)
    await client.gather(ccid, timeout_millis=2000, initial_timeout_millis=2000)
    timed_out, = await sink.wait_for("call.gather.ended", ccid)  # 2 s x 0.05
    assert (timed_out.payload["status"], timed_out.payload["digits"]) == ("timeout", "")
    await client.gather(ccid, minimum_digits=3)
    await emulator.press(ccid, "9", interval_s=0)
    await client.gather_stop(ccid)
    ended = await sink.wait_for("call.gather.ended", ccid, count=2)
    assert (ended[1].payload["status"], ended[1].payload["digits"]) == ("cancelled", "9")


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_dial_validation(telnyx_world) -> None:
    emulator, _sink, client = telnyx_world
    for field, kwargs in (("connection_id", {"connection_id": "", "to": TO, "from_": FROM}),
                          ("from", {"connection_id": CONNECTION_ID, "to": TO, "from_": ""})):
        with pytest.raises(TelnyxApiError) as info:
            await client.dial(**kwargs)
        assert info.value.code == "10004" and info.value.errors[0]["source"]["pointer"] == f"/{field}"
    with pytest.raises(TelnyxApiError) as info:
        await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, timeout_secs=0)
    assert (info.value.status, info.value.code) == (422, "10015")
    assert emulator.dial_log == [] and emulator.events == []


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_callee_can_press_keys_and_hang_up_through_its_call() -> None:
    class KeyPresser:
        async def run(self, ws, call) -> None:
            await call.press("7", interval_s=0)
            await asyncio.sleep(0.05)  # virtual time: the key press goes out before the callee leaves

    media = MediaServer()
    await media.start()
    try:
        async with world(callee_factory=lambda call: KeyPresser()) as (emulator, sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url)
            digit, = await sink.wait_for("call.dtmf.received", result.call_control_id)
            assert digit.payload["digit"] == "7"
            hangup, = await sink.wait_for("call.hangup", result.call_control_id)
            assert hangup.payload["hangup_source"] == "callee"
            await emulator.hooks.drain()
            for received in sink.received:
                verify_signature(received.body, received.headers, emulator.public_key_b64)
    finally:
        await media.close()

