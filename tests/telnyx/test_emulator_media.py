"""The emulator's media streams, the play queue and network impairments."""

from __future__ import annotations

import asyncio
import base64
import itertools
from typing import Any

import orjson
import pytest

from bench.telnyx_emulator import FrameWriter, ImpairedWebSocket, Impairment, MarkEcho, Pacer, PlayQueue, SilentCallee
from tests.fixtures.waiting import eventually

from .helpers import CONNECTION_ID, FROM, TO, MediaServer, world

VIRTUAL = pytest.mark.asyncio(loop_factories=["virtual"])  # bench/virtual_time.py

SECOND_OF_AUDIO = base64.b64encode(b"\x7f" * 8000).decode()


def _audio(seconds: float) -> dict[str, Any]:
    return {"event": "media", "media": {"payload": base64.b64encode(b"\x7f" * int(8000 * seconds)).decode()}}


def _mark(name: str) -> dict[str, Any]:
    return {"event": "mark", "mark": {"name": name}}


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_stream_handshake_documented_fields_and_realtime_frames() -> None:
    media = MediaServer(require_token="s3cret")
    await media.start()
    try:
        async with world() as (_emulator, sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url,
                                       stream_auth_token="s3cret", client_state="lead-9")
            session = await media.next_session()
            assert session.headers["x-telnyx-streaming-auth-token"] == "s3cret"
            await session.wait(lambda: len(session.of("media")) >= 26)

            connected, start = session.frames[0][1], session.frames[1][1]
            assert connected["event"] == "connected" and connected["version"] == "1.0.0"
            assert start["event"] == "start" and start["sequence_number"] == "1"
            stream_id = start["stream_id"]
            details = start["start"]
            assert "stream_id" not in details  # top-level, as Telnyx sends it
            assert details["call_control_id"] == result.call_control_id
            assert details["call_session_id"] == result.call_session_id
            assert (details["from"], details["to"]) == (FROM, TO)
            assert base64.b64decode(details["client_state"]) == b"lead-9"
            assert details["custom_parameters"] == {}
            assert details["media_format"] == {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}

            timed = session.timed("media")[:26]
            frames = [f for _, f in timed]
            for i, frame in enumerate(frames):
                assert frame["stream_id"] == stream_id
                body = frame["media"]
                assert (frame["sequence_number"], body["chunk"], body["timestamp"]) == (
                    str(i + 2), str(i + 1), str(i * 20))
                assert body["track"] == "inbound"
                assert base64.b64decode(body["payload"]) == b"\xff" * 160  # 20 ms of μ-law silence
            # The pacing itself (one frame per 20 ms slot) is the Pacer's, checked exactly in virtual
            # time below: arrival times here carry the transport's and the loop's delays, and a late
            # first frame makes the span short without any frame having been sent early.

            started, = await sink.wait_for("streaming.started", result.call_control_id)
            assert started.payload["stream_url"] == media.url
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_wrong_stream_token_means_streaming_failed() -> None:
    media = MediaServer(require_token="right")
    await media.start()
    try:
        async with world() as (_emulator, sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url,
                                       stream_auth_token="wrong")
            failed, = await sink.wait_for("streaming.failed", result.call_control_id)
            assert failed.payload["failure_reason"] == "connection_failed"
            assert failed.payload["stream_params"] == {"stream_url": media.url, "track": "inbound_track"}
            assert failed.payload["stream_type"] == "websocket"
            assert media.sessions == []
            assert "streaming.started" not in sink.types()
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_marks_come_back_after_the_audio_before_them_has_played() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world() as (_emulator, _sink, client):
            await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url)
            session = await media.next_session()
            await session.wait(lambda: len(session.of("media")) >= 2)

            def echoed(name: str) -> float | None:
                return next((t for t, f in session.timed("mark") if f["mark"]["name"] == name), None)

            # Nothing queued: the mark comes back (no audio to wait for). On virtual time the
            # emulator's clock is the loop's, so over the wire the due times are exact.
            await session.send(_mark("idle"))
            await session.wait(lambda: echoed("idle") is not None)

            # 300 ms of audio, then a mark: back once the audio has played, not before.
            loop = asyncio.get_running_loop()
            sent = loop.time()
            await session.send(_audio(0.3))
            await session.send(_mark("after-300ms"))
            await session.wait(lambda: echoed("after-300ms") is not None)
            assert echoed("after-300ms") - sent == pytest.approx(0.3)

            # 2 s queued, then clear: pending marks come back at once, in order.
            await session.send(_audio(2.0))
            await session.send(_mark("a"))
            await session.send(_audio(1.0))
            await session.send(_mark("b"))
            await asyncio.sleep(0.15)  # (virtual) time for the emulator to (wrongly) echo early
            assert echoed("a") is None
            cleared = loop.time()
            await session.send({"event": "clear"})
            await session.wait(lambda: echoed("b") is not None)
            # Back at the clear, not when their audio would have played (2 s and 3 s on).
            assert echoed("a") == echoed("b") == pytest.approx(cleared)
            names = [f["mark"]["name"] for f in session.of("mark")]
            assert names == ["idle", "after-300ms", "a", "b"]
            for frame in session.of("mark"):
                assert frame["stream_id"] and frame["sequence_number"].isdigit()

            # After the clear the queue is empty again: a new mark is not held behind old audio.
            fresh = loop.time()
            await session.send(_mark("fresh"))
            await session.wait(lambda: echoed("fresh") is not None)
            assert echoed("fresh") == pytest.approx(fresh)
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_malformed_frames_get_telnyx_error_frames() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world() as (_emulator, _sink, client):
            await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url)
            session = await media.next_session()
            await session.wait(lambda: len(session.of("media")) >= 1)
            await session.ws.send_str("{not json")
            await session.send({"event": "media", "media": {"payload": "@@@"}})
            await session.wait(lambda: len(session.of("error")) >= 2)
            codes = [f["payload"]["code"] for f in session.of("error")]
            assert codes == [100003, 100004]
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_app_hangup_sends_stop_closes_the_socket_and_reports() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world() as (_emulator, sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url)
            session = await media.next_session()
            await session.wait(lambda: len(session.of("media")) >= 5)
            await client.hangup(result.call_control_id)
            await asyncio.wait_for(session.closed.wait(), 3)
            events = [f["event"] for _, f in session.frames]
            assert events[-1] == "stop"
            stop = session.of("stop")[0]
            assert stop["stop"]["call_control_id"] == result.call_control_id
            assert stop["stream_id"] == session.frames[1][1]["stream_id"]
            await sink.wait_for("call.hangup", result.call_control_id)
            await sink.wait_for("streaming.stopped", result.call_control_id)
            frames_at_close = len(session.frames)
            await asyncio.sleep(0.1)  # virtual time: time for a wrong frame to arrive
            assert len(session.frames) == frames_at_close  # the callee is gone
    finally:
        await media.close()


async def test_callee_hanging_up_ends_the_call_from_the_callee_side() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world(callee_factory=lambda call: SilentCallee(duration_s=0.3)) as (_emulator, sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url)
            hangup, = await sink.wait_for("call.hangup", result.call_control_id)
            assert hangup.payload["hangup_source"] == "callee"
            assert hangup.payload["hangup_cause"] == "normal_clearing"
            assert int(hangup.payload["call_quality_stats"]["inbound"]["packet_count"]) > 0
            session = media.sessions[0]
            await asyncio.wait_for(session.closed.wait(), 3)
            assert session.of("stop")
            assert 12 <= len(session.of("media")) <= 18  # ~300 ms of 20 ms frames
            assert (await client.hangup(result.call_control_id)).already_ended
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_streaming_start_and_stop_on_an_answered_call() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world() as (_emulator, sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM)
            await sink.wait_for("call.answered", result.call_control_id)
            await client.streaming_start(result.call_control_id, media.url, stream_bidirectional_codec="PCMA",
                                         custom_parameters={"campaign": "spring", "lead": "42"})
            session = await media.next_session()
            await session.wait(lambda: len(session.of("media")) >= 3)
            start = session.of("start")[0]["start"]
            assert start["custom_parameters"] == {"campaign": "spring", "lead": "42"}
            assert start["media_format"]["encoding"] == "PCMA"
            assert base64.b64decode(session.of("media")[0]["media"]["payload"]) == b"\xd5" * 160

            await client.streaming_stop(result.call_control_id)
            await asyncio.wait_for(session.closed.wait(), 3)
            assert session.of("stop")
            await sink.wait_for("streaming.stopped", result.call_control_id)
            status = await client.get_call(result.call_control_id)
            assert status["is_alive"] is True  # only the stream ended
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_app_closing_the_socket_stops_the_stream_but_not_the_call() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world() as (emulator, sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url)
            session = await media.next_session()
            await session.wait(lambda: len(session.of("media")) >= 2)
            await session.ws.close()
            await sink.wait_for("streaming.stopped", result.call_control_id)
            assert emulator.calls[result.call_control_id].is_alive
            assert "call.hangup" not in sink.types()
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_a_stream_whose_app_dies_leaves_the_call_up_for_a_new_stream() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world(callee_factory=lambda call: SilentCallee()) as (_emulator, sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url)
            session = await media.next_session()
            await session.wait(lambda: len(session.of("media")) >= 2)
            session.request.transport.abort()  # the app's process died: no close frame, the socket just goes
            await sink.wait_for("streaming.stopped", result.call_control_id)
            assert (await client.get_call(result.call_control_id))["is_alive"] is True
            assert "call.hangup" not in sink.types()
            # The call can be given a new stream, with its token in the upgrade.
            await client.streaming_start(result.call_control_id, media.url, stream_auth_token="t-2")
            await eventually(lambda: len(media.sessions) >= 2, what="a second media session")
            second = media.sessions[1]
            await second.wait(lambda: len(second.of("media")) >= 2)
            assert second.headers["x-telnyx-streaming-auth-token"] == "t-2"
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_dtmf_from_the_far_end_reaches_stream_webhooks_and_gather() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world() as (emulator, sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url)
            session = await media.next_session()
            await client.gather(result.call_control_id, maximum_digits=4, terminating_digit="#",
                                gather_id="pin")
            await emulator.press(result.call_control_id, "42#", interval_s=0.02)
            ended, = await sink.wait_for("call.gather.ended", result.call_control_id)
            assert (ended.payload["digits"], ended.payload["status"]) == ("42", "valid")
            assert "gather_id" not in ended.payload  # docs-only: see test_sdk_contract
            received = await sink.wait_for("call.dtmf.received", result.call_control_id, count=3)
            assert [e.payload["digit"] for e in received] == ["4", "2", "#"]
            await session.wait(lambda: len(session.of("dtmf")) == 3)
            assert [f["dtmf"]["digit"] for f in session.of("dtmf")] == ["4", "2", "#"]
            assert all(f["occurred_at"].endswith("Z") for f in session.of("dtmf"))
    finally:
        await media.close()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_impaired_stream_loses_frames_but_counters_show_the_gaps() -> None:
    media = MediaServer()
    await media.start()
    try:
        async with world(impairment=Impairment(loss_p=0.3, jitter_ms=15, seed=7)) as (_emulator, _sink, client):
            result = await client.dial(connection_id=CONNECTION_ID, to=TO, from_=FROM, stream_url=media.url)
            session = await media.next_session()
            await asyncio.sleep(0.6)  # virtual time: let impaired audio flow for a while
            await client.hangup(result.call_control_id)
            await asyncio.wait_for(session.closed.wait(), 3)
            chunks = [int(f["media"]["chunk"]) for f in session.of("media")]
            assert len(chunks) < max(chunks)  # some were lost on the way
            assert len(set(chunks)) == len(chunks)
    finally:
        await media.close()


# -- the pieces, on their own ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_play_queue_plays_in_real_time_and_clear_returns_pending_marks() -> None:
    clock = FakeClock()
    queue = PlayQueue(8000, clock=clock)
    queue.push_mark("idle")
    assert queue.pop_due() == ["idle"]
    assert queue.push_media(b"\0" * 1600) == 100.0  # 200 ms, starts now
    assert queue.push_media(b"\0" * 800) == pytest.approx(100.2)  # queued behind it
    queue.push_mark("m1")
    assert queue.next_due() == pytest.approx(100.3)
    clock.now = 100.29
    assert queue.pop_due() == [] and queue.is_playing()
    clock.now = 100.31
    assert queue.pop_due() == ["m1"] and not queue.is_playing()
    queue.push_media(b"\0" * 8000)
    queue.push_mark("m2")
    queue.push_mark("m3")
    clock.now = 100.5
    assert queue.backlog_s() == pytest.approx(0.81)
    assert queue.clear() == ["m2", "m3"]
    assert queue.cleared_s == pytest.approx(0.81) and queue.backlog_s() == 0
    assert queue.pending_marks == [] and queue.received_s == pytest.approx(1.3)


def test_play_queue_that_never_echoes_drops_every_mark_even_on_clear() -> None:
    clock = FakeClock()
    queue = PlayQueue(8000, clock=clock, mark_echo=MarkEcho("never"))
    queue.push_mark("idle")
    queue.push_media(b"\0" * 1600)
    queue.push_mark("m1")
    assert queue.next_due() is None and queue.pending_marks == []
    clock.now = 100.5
    assert queue.pop_due() == []
    queue.push_media(b"\0" * 8000)
    queue.push_mark("m2")
    assert queue.clear() == [] and queue.pending_marks == []


def test_play_queue_with_late_echoes_sends_each_late_s_after_it_was_due() -> None:
    clock = FakeClock()
    queue = PlayQueue(8000, clock=clock, mark_echo=MarkEcho("late", late_s=1.5))
    queue.push_media(b"\0" * 1600)  # plays 100.0 .. 100.2
    queue.push_mark("m1")
    assert queue.next_due() == pytest.approx(101.7)
    clock.now = 100.3
    assert queue.pop_due() == []  # played, but the echo is late
    clock.now = 101.71
    assert queue.pop_due() == ["m1"]
    queue.push_media(b"\0" * 8000)
    queue.push_mark("m2")
    clock.now = 102.0
    # clear: the pending mark is not returned at once, it falls due late_s after the clear
    assert queue.clear() == [] and queue.pending_marks == ["m2"]
    assert queue.next_due() == pytest.approx(103.5)


def test_mark_echo_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError, match="played, never or late"):
        MarkEcho("sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="late_s"):
        MarkEcho("late", late_s=-1)


@VIRTUAL
async def test_play_queue_next_marks_waits_for_the_audio() -> None:
    loop = asyncio.get_running_loop()
    queue = PlayQueue(8000, clock=loop.time)
    queue.push_media(b"\0" * 800)  # 100 ms
    queue.push_mark("done")
    started = loop.time()
    assert await queue.next_marks() == ["done"]
    assert loop.time() - started == pytest.approx(0.1)  # exactly when the audio has played


class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[float, dict[str, Any]]] = []

    async def send_str(self, data: str) -> None:
        self.sent.append((asyncio.get_running_loop().time(), orjson.loads(data)))


async def _push(impairment: Impairment, frames: int = 50, *, control: bool = False) -> tuple[RecordingSocket,
                                                                                              ImpairedWebSocket]:
    raw = RecordingSocket()
    ws = ImpairedWebSocket(raw, impairment)
    writer = FrameWriter("s1")
    for i in range(frames):
        await ws.send_str(writer.media(b"\xff" * 160))
        if control and i == 10:
            await ws.send_str(writer.mark("m"))
        await asyncio.sleep(0.002)  # virtual time: the frames are spread out as a carrier's would be
    await asyncio.sleep(0.12)  # virtual time: past every jitter and reorder delay
    await ws.cancel()
    return raw, ws


def _chunks(raw: RecordingSocket) -> list[int]:
    return [int(f["media"]["chunk"]) for _, f in raw.sent if f["event"] == "media"]


@VIRTUAL
async def test_impairments_are_seeded_and_do_what_they_say() -> None:
    raw, _ = await _push(Impairment())
    assert _chunks(raw) == list(range(1, 51))  # no impairment: untouched

    raw, ws = await _push(Impairment(loss_p=1.0))
    assert _chunks(raw) == [] and ws.dropped == 50

    lossy_a, _ = await _push(Impairment(loss_p=0.3, seed=3))
    lossy_b, _ = await _push(Impairment(loss_p=0.3, seed=3))
    assert _chunks(lossy_a) == _chunks(lossy_b) and 20 < len(_chunks(lossy_a)) < 50

    raw, ws = await _push(Impairment(reorder_p=0.3, seed=1))
    chunks = _chunks(raw)
    assert sorted(chunks) == list(range(1, 51)) and chunks != sorted(chunks) and ws.reordered > 0

    raw, _ = await _push(Impairment(burst=5), frames=20)
    times = [t for t, f in raw.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert sum(g == 0 for g in gaps) == 16  # four bursts of five: four frames of each leave with the first
    assert _chunks(raw) == list(range(1, 21))

    raw, _ = await _push(Impairment(loss_p=1.0), frames=20, control=True)
    assert [f["event"] for _, f in raw.sent] == ["mark"]  # signalling is not impaired



class _Socket:
    def __init__(self) -> None:
        self.at: list[float] = []

    async def send_str(self, data: str) -> None:
        self.at.append(asyncio.get_running_loop().time())


@VIRTUAL
async def test_the_pacer_sends_one_frame_per_slot_and_re_anchors_after_a_stall() -> None:
    loop = asyncio.get_running_loop()
    ws = _Socket()
    pacer = Pacer(ws, FrameWriter("s1"))
    start = loop.time()
    for _ in range(25):
        await pacer.send(b"\xff" * 160)
    assert [round(t - start, 6) for t in ws.at] == [round(i * 0.02, 6) for i in range(25)]
    await asyncio.sleep(0.5)  # a stall far past max_lag_s: no burst to catch up, a new anchor
    resumed = loop.time()
    for _ in range(3):
        await pacer.send(b"\xff" * 160)
    assert [round(t - resumed, 6) for t in ws.at[25:]] == [0.0, 0.02, 0.04]
