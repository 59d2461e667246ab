"""The Telnyx client and emulator against Telnyx's own SDK (issue 15).

The client and the emulator were written side by side, so a mistake in one was repeated
in the other. Here both are checked against a reference nobody here wrote: every Call
Control body the client can send against the SDK's params ``TypedDict``s (keys known,
required keys present, enum values allowed), and every webhook the emulator can emit
against the SDK's event models. Where Telnyx's docs and the SDK disagree the emulator
has a switch (``event_fields``), and both settings are walked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from bench.telnyx_emulator import NumberBehaviour
from control_plane.telnyx import TelnyxApiError, TelnyxClient

from .helpers import CONNECTION_ID, FROM, TO, MediaServer, _serve, world
from .sdk_models import EVENT_MODELS, REQUEST_MODELS, event_shape, nested_model, request_shape, request_shape_of

# -- what the client sends ---------------------------------------------------------------------


class Recorder:
    """A stand-in Telnyx that keeps every request body and answers like Telnyx does."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        action = request.match_info.get("action", "dial")
        self.bodies.append((action, body))
        data = ({"call_control_id": "v3:x", "call_leg_id": "leg", "call_session_id": "session", "is_alive": False}
                if action == "dial" else {"result": "ok"})
        return web.Response(body=orjson.dumps({"data": data}), content_type="application/json")


@contextlib.asynccontextmanager
async def recorded() -> AsyncIterator[tuple[Recorder, TelnyxClient]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/v2/calls", recorder.handle)
    app.router.add_post("/v2/calls/{ccid}/actions/{action}", recorder.handle)
    runner, base = await _serve(app)
    client = TelnyxClient("key", base_url=f"{base}/v2")
    try:
        yield recorder, client
    finally:
        await client.close()
        await runner.cleanup()


async def _every_command(client: TelnyxClient) -> None:
    """Each typed command, once with its defaults and once with every option it has."""
    ccid = "v3:x"
    await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url="wss://app/media",
                      stream_auth_token="t", client_state="s", webhook_url="https://app/hook",
                      answering_machine_detection="detect_beep", timeout_secs=30)
    await client.answer(ccid)
    await client.answer(ccid, stream_url="wss://app/media?t=x", webhook_url="https://app/hook", client_state="s")
    await client.hangup(ccid, client_state="s")
    await client.reject(ccid)
    await client.streaming_start(ccid, "wss://app/media", stream_auth_token="t", custom_parameters={"a": "b"},
                                 client_state="s")
    await client.streaming_stop(ccid, stream_id="7a3b", client_state="s")
    await client.speak(ccid, "hello", payload_type="text", language="en-US", client_state="s")
    await client.gather(ccid, minimum_digits=1, maximum_digits=4, timeout_millis=10000,
                        inter_digit_timeout_millis=3000, terminating_digit="#", valid_digits="0123456789",
                        gather_id="pin", client_state="s")
    await client.gather_stop(ccid)
    await client.send_dtmf(ccid, "12#", duration_millis=250)
    await client.transfer(ccid, "+15550100003", from_=FROM, timeout_secs=30, client_state="s")
    await client.record_start(ccid, format="mp3", channels="dual", client_state="s")
    await client.record_stop(ccid, recording_id="r1")
    await client.record_pause(ccid, recording_id="r1")
    await client.record_resume(ccid, recording_id="r1")
    await client.playback_start(ccid, audio_url="https://app/a.mp3", loop=2, overlay=False, client_state="s")
    await client.playback_stop(ccid)
    await client.client_state_update(ccid, "s")


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_every_client_command_matches_the_sdk_params() -> None:
    async with recorded() as (recorder, client):
        await _every_command(client)
    bodies = recorder.bodies

    assert {action for action, _ in bodies} == set(REQUEST_MODELS)  # every command was walked
    mismatches = [m for action, body in bodies for m in request_shape(action).mismatches(body, action)]
    assert mismatches == []


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_answer_sends_no_stream_auth_token() -> None:
    """Issue 15 item 1: the SDK's answer has no stream_auth_token (dial and streaming_start do);
    the client has no such parameter, so an answered call's credential rides in stream_url."""
    assert "stream_auth_token" not in request_shape("answer").keys
    assert "stream_auth_token" in request_shape("dial").keys
    assert "stream_auth_token" in request_shape("streaming_start").keys

    async with recorded() as (recorder, client):
        await client.answer("v3:x", stream_url="wss://app/media?token=abc")
    body = recorder.bodies[0][1]

    assert "stream_auth_token" not in body and body["stream_url"].endswith("token=abc")


def test_typed_commands_cover_every_sdk_action_the_emulator_serves() -> None:
    commands = {name for name in dir(TelnyxClient) if not name.startswith("_")} - {"action", "get_call", "close"}
    assert commands == set(REQUEST_MODELS)


# -- what the emulator emits -------------------------------------------------------------------


def _nested_mismatches(event_type: str, payload: dict[str, Any]) -> list[str]:
    found: list[str] = []
    nested = {"call.recording.saved": ("recording_urls", "public_recording_urls"),
              "streaming.failed": ("stream_params",), "call.hangup": ("call_quality_stats",)}
    for field in nested.get(event_type, ()):
        value = payload.get(field)
        if not isinstance(value, dict):
            continue
        model = nested_model(event_type, field)
        known = {info.alias or name for name, info in model.model_fields.items()}
        found += [f"{event_type}.{field}: unknown key {key!r}" for key in value if key not in known]
    return found


def event_mismatches(data: dict[str, Any], docs_extras: frozenset[str] = frozenset()) -> list[str]:
    event_type = data["event_type"]
    if event_type not in EVENT_MODELS:
        return [f"{event_type}: not an event type of the SDK's models here"]
    envelope, payload = event_shape(event_type)
    found = envelope.mismatches(data, event_type)
    body = {k: v for k, v in data["payload"].items() if k not in docs_extras}
    return found + payload.mismatches(body, f"{event_type}.payload") + _nested_mismatches(event_type, body)


async def _walk_emulator(**options: Any) -> list[dict[str, Any]]:
    """Drive the emulator through every event it can emit; returns every event ``data``."""
    media = MediaServer()
    await media.start()
    try:
        async with world(**options) as (emulator, sink, client):
            emulator.set_number_behaviour("+15550100010", "busy")
            emulator.set_number_behaviour("+15550100011", NumberBehaviour(answer="no_answer", ring_s=0.2))
            emulator.set_number_behaviour("+15550100012", "voicemail")
            emulator.set_number_behaviour("+15550100013", "voicemail")
            busy = await client.dial(connection_id=CONNECTION_ID, to="+15550100010", from_=FROM)
            lapsed = await client.dial(connection_id=CONNECTION_ID, to="+15550100011", from_=FROM, timeout_secs=5)
            amd = await client.dial(connection_id=CONNECTION_ID, to="+15550100012", from_=FROM,
                                    answering_machine_detection="detect_beep")
            premium = await client.dial(connection_id=CONNECTION_ID, to="+15550100013", from_=FROM,
                                        answering_machine_detection="premium")
            call = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url,
                                     client_state="s")
            ccid = call.call_control_id
            await sink.wait_for("call.answered", ccid)
            await media.next_session()
            await client.speak(ccid, "Hello there.", language="en-US")
            await client.playback_start(ccid, audio_url="https://example.com/a.mp3")
            await client.playback_stop(ccid)
            await client.gather(ccid, maximum_digits=2, gather_id="pin")
            await emulator.press(ccid, "42", interval_s=0.01)
            await client.record_start(ccid, format="mp3", channels="single")
            await client.record_stop(ccid)
            await client.transfer(ccid, "+15550100003")
            await sink.wait_for("streaming.started", ccid)
            await client.streaming_stop(ccid)
            await sink.wait_for("streaming.stopped", ccid)
            await client.streaming_start(ccid, "ws://127.0.0.1:9/nothing-listens")
            await sink.wait_for("streaming.failed", ccid)

            incoming = emulator.incoming_call(from_=FROM, to=TO, connection_id=CONNECTION_ID)
            await client.reject(incoming.call_control_id, cause="NOT_FOUND")
            await sink.wait_for("call.speak.ended", ccid)
            await sink.wait_for("call.gather.ended", ccid)
            await client.hangup(ccid)
            await sink.wait_for("call.machine.greeting.ended", amd.call_control_id)
            await sink.wait_for("call.machine.premium.greeting.ended", premium.call_control_id)
            for machine in (amd, premium):
                await client.hangup(machine.call_control_id)
            for other in (busy, lapsed, amd, premium):
                await sink.wait_for("call.hangup", other.call_control_id)
            await sink.wait_for("call.hangup", incoming.call_control_id)
            await sink.wait_for("call.hangup", ccid)
            await emulator.hooks.drain()
            return list(emulator.events)
    finally:
        await media.close()


@pytest.mark.parametrize("event_fields", ["sdk", "docs"])
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_every_emulator_webhook_matches_the_sdk_event_models(event_fields: str) -> None:
    from bench.telnyx_emulator.schema import DOCS_ONLY_FIELDS

    events = await _walk_emulator(event_fields=event_fields)
    assert {e["event_type"] for e in events} == set(EVENT_MODELS)  # every event type was emitted
    extras = {t: DOCS_ONLY_FIELDS.get(t, frozenset()) if event_fields == "docs" else frozenset()
              for t in EVENT_MODELS}
    mismatches = [m for e in events for m in event_mismatches(e, extras[e["event_type"]])]
    assert mismatches == []
    saved = next(e["payload"] for e in events if e["event_type"] == "call.recording.saved")
    gathered = next(e["payload"] for e in events if e["event_type"] == "call.gather.ended")
    if event_fields == "docs":
        assert DOCS_ONLY_FIELDS["call.recording.saved"] <= saved.keys() and gathered["gather_id"] == "pin"
    else:
        assert "call_control_id" not in saved and "gather_id" not in gathered


def test_the_emulator_tables_are_the_sdk_models() -> None:
    """The emulator carries copies of the SDK's shapes (it must not need the SDK to run)."""
    from bench.telnyx_emulator.schema import DOCS_ONLY_FIELDS, EVENT_FIELDS, REQUESTS

    assert set(REQUESTS) == set(REQUEST_MODELS)
    for action, shape in REQUESTS.items():
        sdk = request_shape(action)
        assert (shape.keys, shape.required, shape.enums or {}) == (sdk.keys, sdk.required, sdk.enums), action
    assert set(EVENT_FIELDS) == set(EVENT_MODELS)
    for event_type, fields in EVENT_FIELDS.items():
        assert fields == event_shape(event_type)[1].keys, event_type
    for event_type, fields in DOCS_ONLY_FIELDS.items():  # docs-only means: not in the SDK's model
        assert not fields & event_shape(event_type)[1].keys, event_type


# -- the emulator refuses what Telnyx's parameters do not allow ---------------------------------


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_emulator_refuses_unknown_keys_and_bad_enum_values_with_a_422(telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    call = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
    ccid = call.call_control_id
    await sink.wait_for("call.answered", ccid)
    with pytest.raises(TelnyxApiError) as info:
        await client.action(ccid, "answer", stream_auth_token="t")
    assert (info.value.status, info.value.code) == (422, "10015")
    assert info.value.errors[0]["source"] == {"pointer": "/stream_auth_token"}
    with pytest.raises(TelnyxApiError) as info:
        await client.streaming_start(ccid, "wss://x", stream_track="inbound")
    assert (info.value.status, info.value.code) == (422, "10015") and "stream_track" in info.value.detail
    with pytest.raises(TelnyxApiError) as info:
        await client.speak(ccid, "hi", language="en")
    assert (info.value.status, info.value.code) == (422, "10015")
    with pytest.raises(TelnyxApiError) as info:
        await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, answering_machine_detection="yes")
    assert (info.value.status, info.value.code) == (422, "10015")
    with pytest.raises(TelnyxApiError) as info:  # a hostile key is not echoed back
        await client.action(ccid, "hangup", **{"<script>x</script>": 1})
    assert "<script>" not in str(info.value) and "source" not in info.value.errors[0]
    assert emulator.calls[ccid].is_alive  # nothing a refused command asked for happened


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_unknown_keys_switch_lets_them_through() -> None:
    async with world(unknown_keys=True) as (_emulator, sink, client):
        call = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, not_a_telnyx_key=1)
        await sink.wait_for("call.answered", call.call_control_id)
        with pytest.raises(TelnyxApiError):  # enum values are still checked
            await client.reject(call.call_control_id, cause="NOPE")


@pytest.mark.parametrize(("cause", "hangup_cause", "sip"), [
    ("CALL_REJECTED", "call_rejected", "603"), ("USER_BUSY", "user_busy", "486"),
    ("NOT_FOUND", "not_found", "404"), ("TEMPORARILY_UNAVAILABLE", "unspecified", "480"),
])
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_reject_takes_every_sdk_cause(cause: str, hangup_cause: str, sip: str, telnyx_world) -> None:
    emulator, sink, client = telnyx_world
    incoming = emulator.incoming_call(from_=FROM, to=TO, connection_id=CONNECTION_ID)
    await client.reject(incoming.call_control_id, cause=cause)
    hangup, = await sink.wait_for("call.hangup", incoming.call_control_id)
    assert (hangup.payload["hangup_cause"], hangup.payload["sip_hangup_cause"]) == (hangup_cause, sip)


# -- speech frames -----------------------------------------------------------------------------


def test_stt_emulator_error_frames_in_sdk_mode_are_the_sdk_error_frame() -> None:
    from telnyx.types.transcribe_server_event import SttErrorFrame

    from bench.emulators.profiles import FaultSwitch, get_profile
    from bench.emulators.stt import SttEmulator, UtteranceRecogniser, validate_params

    emulator = SttEmulator(api_key="k", profile=get_profile("fast"), faults=FaultSwitch(),
                           recogniser=UtteranceRecogniser(), error_shape="sdk")
    error, _, _ = validate_params({"transcription_engine": "Nope"})
    assert error is not None
    frame = orjson.loads(emulator.error_frame(error))
    assert set(frame) == set(SttErrorFrame.model_fields)
    assert SttErrorFrame.model_validate(frame).error.startswith("Invalid transcription engine")


def test_voicemail_speak_languages_are_the_sdks() -> None:
    from control_plane.telnyx.client import SPEAK_LANGUAGES

    assert request_shape("speak").enums["language"] == SPEAK_LANGUAGES


def _model_keys(model: Any) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


@pytest.mark.parametrize("send_flush", [True, False])
async def test_tts_client_frames_are_the_sdks_client_event(send_flush: bool) -> None:
    """Every frame the TTS client sends has only the SDK's keys (text, force, voice_settings),
    plus "flush", which Telnyx's messages page documents, only when flushing is on."""
    from pydantic import SecretStr

    from bench.emulators.server import start_emulators
    from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig, TelnyxTtsStream

    sdk_keys = set(request_shape_of("stream_client_event_param.StreamClientEventParam").keys)
    sent: list[dict[str, Any]] = []
    original = TelnyxTtsStream._send

    async def recording(self: TelnyxTtsStream, frame: str) -> None:
        sent.append(orjson.loads(frame))
        await original(self, frame)

    emulators = await start_emulators()
    tts = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=SecretStr(emulators.api_key), url=emulators.tts_url,
                                             send_flush=send_flush))
    try:
        TelnyxTtsStream._send = recording  # type: ignore[method-assign]
        stream = await tts.open(voice="natural_hd", sample_rate=8000)
        await stream.send_text("Well, let me see", flush=True)
        await stream.send_text(" now.")
        await stream.end()
        async for _ in stream:
            pass
        await stream.aclose()
    finally:
        TelnyxTtsStream._send = original  # type: ignore[method-assign]
        await tts.aclose()
        await emulators.close()

    extra = {"flush"} if send_flush else set()
    assert all(set(frame) <= sdk_keys | extra for frame in sent) and len(sent) == 4
    assert any("flush" in frame for frame in sent) == send_flush


async def test_tts_emulator_frames_are_the_sdks_server_events() -> None:
    from aiohttp import ClientSession, WSMsgType
    from telnyx.types.stream_server_event import AudioChunkFrame, ErrorFrame, FinalFrameEvent

    from bench.emulators.server import start_emulators

    emulators = await start_emulators()
    frames: list[dict[str, Any]] = []
    try:
        async with ClientSession() as http:
            async with http.ws_connect(emulators.tts_url, params={"voice": "Telnyx.NaturalHD.astra",
                                                                  "audio_format": "pcm"},
                                       headers={"Authorization": f"Bearer {emulators.api_key}"}) as ws:
                for text in (" ", "Hello there.", ""):
                    await ws.send_str(orjson.dumps({"text": text}).decode())
                async for message in ws:
                    if message.type is WSMsgType.TEXT:
                        frames.append(orjson.loads(message.data))
            async with http.ws_connect(emulators.tts_url, params={"voice": "Telnyx.NaturalHD.astra"},
                                       headers={"Authorization": f"Bearer {emulators.api_key}"}) as ws:
                await ws.send_str('{"text":"not the handshake"}')
                frames.append(orjson.loads((await ws.receive()).data))
    finally:
        await emulators.close()

    *audio, final, error = frames
    assert audio and all(set(f) <= _model_keys(AudioChunkFrame) and f["isFinal"] is False for f in audio)
    assert set(final) <= _model_keys(FinalFrameEvent) and final["isFinal"] is True and final["audio"] is None
    assert set(error) <= _model_keys(ErrorFrame) and isinstance(error["error"], str)


# -- speech to text ----------------------------------------------------------------------------

STT_PARAMS = "speech_to_text_retrieve_transcription_params.SpeechToTextRetrieveTranscriptionParams"
# The client's own STT frames are binary audio and the documented Deepgram controls (Finalize,
# KeepAlive, CloseStream): the SDK's TranscribeClientEvent is ``object``, so only the query
# and the server's frames have a model to check.


@pytest.mark.parametrize("engine", ["Deepgram", "Telnyx", "Google"])
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_stt_emulator_transcript_frames_are_the_sdks_transcript_frame(emu: Any, engine: str) -> None:
    """Every frame the STT emulator sends validates as the SDK's ``TranscriptFrame`` (``"type":
    "transcript"``), with no key beyond it except Deepgram's ``speech_final``, which Telnyx's
    responses page documents for Deepgram only and the SDK lacks (the client needs neither)."""
    import aiohttp
    from telnyx.types.transcribe_server_event import TranscriptFrame

    from bench.signals import silence
    from engine.providers.stt_engines import stt_engine
    from tests.providers.helpers import HELLO_PCM, frames, wait_for

    table = stt_engine(engine)
    received: list[dict[str, Any]] = []
    params = {"transcription_engine": engine, "input_format": "linear16", "sample_rate": "8000",
              "interim_results": "true"}
    async with aiohttp.ClientSession() as http, http.ws_connect(
            emu.stt_url, params=params, headers={"Authorization": f"Bearer {emu.api_key}"}) as ws:
        async def read() -> None:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    received.append(orjson.loads(msg.data))

        reader = asyncio.ensure_future(read())
        audio = silence(0.2) + HELLO_PCM + silence(table.silence_window_ms / 1000 + 0.6)
        for chunk in frames(audio, 1600):
            await ws.send_bytes(chunk)
            await asyncio.sleep(0.025)  # paced as a caller would be (virtual time: free)
        if table.finalize:
            await ws.send_str('{"type":"Finalize"}')
        await wait_for(lambda: any(f.get("is_final") for f in received), timeout=5.0)
        await ws.close()
        await reader

    allowed = _model_keys(TranscriptFrame) | ({"speech_final"} if table.speech_final else set())
    assert received
    for frame in received:
        assert TranscriptFrame.model_validate(frame).type == "transcript"
        assert set(frame) <= allowed, frame
    assert any(TranscriptFrame.model_validate(f).is_final for f in received)


@pytest.mark.parametrize("engine", ["Deepgram", "Telnyx", "Google"])
def test_stt_client_query_matches_the_sdk_params(engine: str) -> None:
    """The STT client's query has only the SDK's keys and allowed values. One documented
    disagreement: Telnyx's models page names Deepgram's WebSocket model ``nova-3`` (the REST
    one ``deepgram/nova-3``), the SDK's enum only the latter; the default is the docs' name and
    the SDK's is accepted as ``CALLAGENT_PROVIDERS__STT_MODEL`` (both connect, tested below)."""
    from pydantic import SecretStr

    from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig

    shape = request_shape_of(STT_PARAMS)
    query = TelnyxSpeechToText(TelnyxSttConfig(api_key=SecretStr("k"), transcription_engine=engine)).query(8000)
    if engine == "Deepgram":
        assert query["model"] == "nova-3" and "nova-3" not in shape.enums["model"]
        query = TelnyxSpeechToText(TelnyxSttConfig(api_key=SecretStr("k"), transcription_engine=engine,
                                                   model="deepgram/nova-3")).query(8000)
    assert shape.mismatches(query, f"stt query ({engine})") == []


@pytest.mark.parametrize("model", ["nova-3", "deepgram/nova-3"])
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_stt_client_transcribes_with_the_docs_or_the_sdks_model_name(emu: Any, model: str) -> None:
    from pydantic import SecretStr

    from bench.signals import silence
    from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig
    from tests.providers.helpers import HELLO, HELLO_PCM, feed_paced, wait_for

    got: list[Any] = []
    stt = TelnyxSpeechToText(TelnyxSttConfig(api_key=SecretStr(emu.api_key), url=emu.stt_url, model=model))
    session = await stt.open(sample_rate=8000, on_transcript=got.append, on_error=got.append)
    await feed_paced(session, silence(0.2) + HELLO_PCM + silence(0.1))
    await session.finalize()
    await wait_for(lambda: any(getattr(t, "is_final", False) for t in got), timeout=5.0)
    await session.aclose()
    await stt.aclose()

    finals = [t for t in got if getattr(t, "is_final", False)]
    assert [t.text for t in finals] == [HELLO]


class SdkSttServer:
    """Sends exactly the frames the SDK's models define: transcripts without Deepgram's
    speech_final (one with a null confidence, as cohere/ar-stt returns), then an error frame."""

    def __init__(self, frames: list[dict[str, Any]]) -> None:
        self.frames = frames

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the first audio
        for frame in self.frames:
            await ws.send_str(orjson.dumps(frame).decode())
        await ws.close()
        return ws


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_stt_client_accepts_frames_in_the_sdks_shape_only() -> None:
    from pydantic import SecretStr
    from telnyx.types.transcribe_server_event import SttErrorFrame, TranscriptFrame

    from engine.providers.base import Transcript
    from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig
    from tests.providers.helpers import wait_for

    frames = [TranscriptFrame(type="transcript", transcript="Hello", is_final=False).model_dump(exclude_none=True),
              TranscriptFrame(type="transcript", transcript="Hello there.", is_final=True,
                              confidence=None).model_dump(),
              SttErrorFrame(type="error", error="Invalid model: unknown model for engine Deepgram").model_dump()]
    assert "speech_final" not in frames[1] and frames[1]["confidence"] is None

    app = web.Application()
    app.router.add_get("/v2/speech-to-text/transcription", SdkSttServer(frames).handle)
    runner, base = await _serve(app)
    transcripts: list[Transcript] = []
    errors: list[Any] = []
    stt = TelnyxSpeechToText(TelnyxSttConfig(api_key=SecretStr("k"), url=f"{base.replace('http', 'ws')}"
                                             "/v2/speech-to-text/transcription", batch_ms=20))
    try:
        session = await stt.open(sample_rate=8000, on_transcript=transcripts.append, on_error=errors.append)
        session.feed(b"\x00" * 320)
        await wait_for(lambda: errors)
        await session.aclose()
    finally:
        await stt.aclose()
        await runner.cleanup()

    assert [(t.text, t.is_final, t.speech_final, t.confidence) for t in transcripts] == [
        ("Hello", False, False, None), ("Hello there.", True, False, None)]
    (error,) = errors
    assert "Invalid model" in str(error) and error.retryable is False


def test_tts_client_query_is_the_sdks_or_the_docs_form() -> None:
    """The SDK's TTS query params (``audio_format`` pcm / wav / mp3, no ``sample_rate``) or,
    with the default, the voices' pages' ``linear16`` + ``sample_rate``: the only differences."""
    from pydantic import SecretStr

    from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig

    shape = request_shape_of("text_to_speech_retrieve_speech_params.TextToSpeechRetrieveSpeechParams")
    for fmt in ("pcm", "wav", "mp3"):
        query = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=SecretStr("k"), audio_format=fmt)).query("natural_hd", 8000)
        assert shape.mismatches(query, f"tts query ({fmt})") == []
    docs = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=SecretStr("k"))).query("natural_hd", 8000)
    found = shape.mismatches(docs, "tts query (docs)")
    assert len(found) == 2 and "'sample_rate'" in found[0] and "audio_format='linear16'" in found[1]
