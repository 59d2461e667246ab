"""The Telnyx STT client against the STT emulator, over a real WebSocket."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from pydantic import SecretStr

from bench.signals import silence, voiced
from engine import _audioop as audioop
from engine.codecs import PCMU
from engine.providers.base import ProviderError, Transcript
from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig

from .helpers import (
    FRAME,
    HELLO,
    HELLO_PCM,
    NUMBER,
    NUMBER_PCM,
    assert_no_tasks_left,
    emulators,
    feed_paced,
    frames,
    other_tasks,
    wait_for,
)

VIRTUAL = pytest.mark.asyncio(loop_factories=["virtual"])  # bench/virtual_time.py


class Recorder:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transcripts: list[tuple[float, Transcript]] = []
        self.errors: list[tuple[float, ProviderError]] = []

    def on_transcript(self, transcript: Transcript) -> None:
        self.transcripts.append((self.loop.time(), transcript))

    def on_error(self, error: ProviderError) -> None:
        self.errors.append((self.loop.time(), error))

    @property
    def finals(self) -> list[Transcript]:
        return [t for _, t in self.transcripts if t.is_final]

    @property
    def interims(self) -> list[Transcript]:
        return [t for _, t in self.transcripts if not t.is_final]


def client(emu, **overrides) -> TelnyxSpeechToText:
    fields = {"api_key": SecretStr(emu.api_key), "url": emu.stt_url, **overrides}
    return TelnyxSpeechToText(TelnyxSttConfig(**fields))


async def open_session(stt: TelnyxSpeechToText, rec: Recorder, rate: int = 8000):
    return await stt.open(sample_rate=rate, on_transcript=rec.on_transcript, on_error=rec.on_error)


async def recognise(pcm: bytes, *, rate: int = 8000, **emulator_kwargs) -> Recorder:
    """Feed ``pcm`` (all at once), finalize, return what came back."""
    async with emulators(**emulator_kwargs) as emu:
        stt = client(emu)
        rec = Recorder()
        session = await open_session(stt, rec, rate)
        for frame in frames(pcm, rate // 50 * 2):
            session.feed(frame)
        await session.finalize()
        await wait_for(lambda: rec.finals)
        await session.aclose()
        await stt.aclose()
    return rec


@VIRTUAL
async def test_interim_results_while_speaking_then_final_after_finalize(emu):
    stt = client(emu)
    rec = Recorder()
    session = await open_session(stt, rec)
    fed_at = await feed_paced(session, silence(0.2) + HELLO_PCM + silence(0.2), speed=4.0)
    finalize_at = rec.loop.time()
    await session.finalize()
    await wait_for(lambda: rec.finals)
    final_at = next(at for at, t in rec.transcripts if t.is_final)
    await session.aclose()
    await stt.aclose()
    await emu.close()  # the leak check counts every task, the emulator's too
    assert rec.finals == [Transcript(HELLO, True, False, rec.finals[0].confidence)]
    assert rec.finals[0].confidence > 0.9
    # An interim (about one a second, as Deepgram's) while the audio is still arriving.
    assert rec.interims
    assert all(HELLO.startswith(t.text) for t in rec.interims)
    assert rec.transcripts[0][0] < fed_at
    # The final comes the profile's 100 ms after Finalize, never before the audio it covers.
    assert final_at - finalize_at == pytest.approx(0.1, abs=0.005)
    assert final_at > fed_at
    assert not rec.errors
    await assert_no_tasks_left()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_recognises_a_line_despite_lost_frames_and_surrounding_silence():
    damaged = bytearray(NUMBER_PCM)
    damaged[10 * FRAME:12 * FRAME] = bytes(2 * FRAME)  # two frames lost, concealed with silence
    rec = await recognise(silence(0.4) + bytes(damaged) + silence(0.3))
    assert [t.text for t in rec.finals] == [NUMBER]
    assert rec.finals[0].confidence < 0.99  # it noticed the damage


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_recognises_audio_that_went_through_pcmu():
    rec = await recognise(PCMU.decode(PCMU.encode(silence(0.1) + HELLO_PCM)))
    assert [t.text for t in rec.finals] == [HELLO]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_two_lines_in_one_segment_come_out_in_order():
    rec = await recognise(NUMBER_PCM + silence(0.2) + HELLO_PCM)
    assert [t.text for t in rec.finals] == [f"{NUMBER} {HELLO}"]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_unknown_speech_gets_a_placeholder_with_its_duration():
    rec = await recognise(silence(0.2) + voiced(1.4, f0=210.0, seed=99) + silence(0.1))
    assert [t.text for t in rec.finals] == ["(unrecognised speech, 1.4 s)"]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_recognises_at_16_khz_when_the_engine_upsamples():
    pcm = silence(0.2) + HELLO_PCM + silence(0.1)
    up = audioop.ratecv(pcm, 2, 1, 8000, 16000, None)[0]
    rec = await recognise(up, rate=16000)
    assert [t.text for t in rec.finals] == [HELLO]


@VIRTUAL
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_own_endpointing_without_finalize(emu):
    stt = client(emu)
    rec = Recorder()
    session = await open_session(stt, rec)
    # 300 ms of trailing silence is not enough for the emulator's 500 ms endpointing...
    for frame in frames(HELLO_PCM + silence(0.3)):
        session.feed(frame)
    await asyncio.sleep(0.25)  # virtual time: time for a wrong final to arrive
    assert not rec.finals
    # ... 300 ms more is.
    for frame in frames(silence(0.3)):
        session.feed(frame)
    fed_at = rec.loop.time()
    await wait_for(lambda: rec.finals)
    final_at = next(at for at, t in rec.transcripts if t.is_final)
    await session.aclose()
    await stt.aclose()
    assert rec.finals[0].text == HELLO and rec.finals[0].speech_final
    assert final_at - fed_at == pytest.approx(0.1, abs=0.025)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_feed_batches_audio_into_100_ms_frames_without_tasks_per_frame(emu):
    stt = client(emu)
    rec = Recorder()
    session = await open_session(stt, rec)
    tasks_before = len(other_tasks())
    for frame in frames(silence(0.1) + HELLO_PCM)[:49]:  # 980 ms
        session.feed(frame)
        assert len(other_tasks()) == tasks_before
    await asyncio.sleep(0.05)  # virtual time: the batched frames reach the emulator
    stats = emu.stt.stats
    assert stats.audio_frames >= 1 and stats.min_audio_frame_bytes >= 1600
    await session.finalize()  # flushes the 180 ms not yet sent, then Finalize
    await wait_for(lambda: rec.finals)
    assert stats.audio_bytes == 49 * FRAME
    assert stats.finalizes == 1
    await session.aclose()
    await session.aclose()  # idempotent
    session.feed(bytes(FRAME))  # a no-op once closed
    await stt.aclose()
    await wait_for(lambda: stats.close_streams == 1)
    await emu.close()  # the leak check counts every task, the emulator's too
    await assert_no_tasks_left()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_no_callbacks_after_aclose(emu):
    stt = client(emu)
    rec = Recorder()
    session = await open_session(stt, rec)
    for frame in frames(HELLO_PCM):
        session.feed(frame)
    await session.finalize()
    await session.aclose()  # the final is still 100 ms away
    await asyncio.sleep(0.2)  # virtual time: past when the final would have come
    await stt.aclose()
    assert not rec.finals and not rec.errors


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_wrong_api_key_fails_open_for_good(emu):
    stt = client(emu, api_key=SecretStr("wrong"))
    with pytest.raises(ProviderError) as caught:
        await open_session(stt, Recorder())
    await stt.aclose()
    assert not caught.value.retryable
    assert "401" in str(caught.value) and "wrong" not in str(caught.value)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_connect_failure_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    stt = TelnyxSpeechToText(TelnyxSttConfig(api_key=SecretStr("k"), url=f"ws://127.0.0.1:{port}/x"))
    with pytest.raises(ProviderError) as caught:
        await open_session(stt, Recorder())
    await stt.aclose()
    assert caught.value.retryable


@pytest.mark.parametrize("shape", ["docs", "sdk"])
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_bad_parameters_come_back_as_an_error_frame_that_is_not_retried(emu, shape):
    """Telnyx's docs show errors[] with a 4xxxx code; the SDK's model is {"type": "error",
    "error": str} with no code. Either way a bad engine/format/rate is final: the same request
    would fail again, so the agent must not reconnect."""
    emu.stt.error_shape = shape
    # the Telnyx engine has no mulaw
    stt = client(emu, transcription_engine="Telnyx", extra_params={"input_format": "mulaw"})
    rec = Recorder()
    session = await open_session(stt, rec)
    await wait_for(lambda: rec.errors)
    await session.aclose()
    await stt.aclose()
    assert len(rec.errors) == 1  # the close that follows the error frame is not a second error
    error = rec.errors[0][1]
    assert "not supported by Telnyx" in str(error) and not error.retryable
    assert ("40002" in str(error)) == (shape == "docs")


@pytest.mark.parametrize("fault, expected, shape", [
    ("error_frame", "50001", "docs"), ("error_frame", "Transcription failed: emulated failure", "sdk"),
    ("disconnect", "closed by the server", "docs")])
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_mid_stream_failures_reach_on_error(emu, fault, expected, shape):
    emu.stt.error_shape = shape
    stt = client(emu, extra_params={"emulator_fault": fault})
    rec = Recorder()
    session = await open_session(stt, rec)
    for frame in frames(HELLO_PCM[:4 * 1600]):
        session.feed(frame)
    await wait_for(lambda: rec.errors)
    session.feed(bytes(FRAME))  # ignored after the failure
    await session.finalize()  # returns at once after a failure
    await session.aclose()
    await stt.aclose()
    assert len(rec.errors) == 1
    assert expected in str(rec.errors[0][1]) and rec.errors[0][1].retryable


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_an_unanswered_finalize_is_counted_not_an_error(emu):
    # A stalled recogniser (or an engine with nothing to say) leaves a Finalize unanswered:
    # the call must not lose its recogniser over it; the agent bounds its own wait.
    emu.faults.arm("slow", "stt")
    stt = client(emu, finalize_timeout_s=0.05)
    rec = Recorder()
    session = await open_session(stt, rec)
    for frame in frames(HELLO_PCM):
        session.feed(frame)
    await session.finalize()
    await wait_for(lambda: stt.stats.finalizes_unanswered == 1)
    session.feed(bytes(FRAME))  # the session still takes audio
    await session.aclose()
    await stt.aclose()
    assert not rec.transcripts and not rec.errors
    assert stt.stats.finalizes_sent == 1


def test_default_engine_is_deepgram_nova_3_with_interim_results():
    stt = TelnyxSpeechToText(TelnyxSttConfig(api_key=SecretStr("k")))
    query = stt.query(8000)
    assert (query["transcription_engine"], query["model"], query["interim_results"]) == ("Deepgram", "nova-3", "true")
    assert stt.can_finalize
    telnyx = TelnyxSpeechToText(TelnyxSttConfig(api_key=SecretStr("k"), transcription_engine="Telnyx"))
    assert telnyx.query(8000)["model"] == "openai/whisper-tiny" and not telnyx.can_finalize
    azure = TelnyxSpeechToText(TelnyxSttConfig(api_key=SecretStr("k"), transcription_engine="Azure"))
    assert azure.can_finalize is False


@pytest.mark.parametrize("engine", ["Telnyx", "Google"])
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_finals_only_engines_get_no_finalize_and_their_final_comes_on_their_own(emu, engine):
    stt = client(emu, transcription_engine=engine, finalize_timeout_s=0.05)
    rec = Recorder()
    session = await open_session(stt, rec)
    await feed_paced(session, silence(0.2) + HELLO_PCM + silence(0.1), speed=4.0)
    await session.finalize()  # flushes the audio; the engine would ignore a Finalize
    await asyncio.sleep(0.1)  # virtual time: time for a wrong final to arrive
    assert not rec.finals  # nothing forces the final: the engine's window has not passed
    await feed_paced(session, silence(1.0), speed=4.0)
    await wait_for(lambda: rec.finals)
    await session.aclose()
    await stt.aclose()
    stats = emu.stt.stats
    assert stats.finalizes == 0 and stt.stats.finalizes_flushed_only == 1
    assert not rec.interims and not rec.errors  # interim_results=true is ignored
    assert len(rec.finals) == 1 and not rec.finals[0].speech_final
    words = rec.finals[0].text
    assert words.split() == (HELLO if engine == "Telnyx" else HELLO.replace(",", "").replace(".", "")).split()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_fault_armed_over_the_control_endpoint_fails_one_handshake(emu):
    async with aiohttp.ClientSession() as http, http.post(f"{emu.control_url}/faults",
                         json={"kind": "http_500", "service": "stt", "count": 1}) as response:
        assert response.status == 200
    stt = client(emu)
    with pytest.raises(ProviderError) as caught:
        await open_session(stt, Recorder())
    assert caught.value.retryable and "500" in str(caught.value)
    session = await open_session(stt, Recorder())  # the fault is used up
    await session.aclose()
    await stt.aclose()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_an_engine_that_does_not_punctuate_returns_bare_lower_case_words():
    # The bench's --stt-punctuation none: the same lines, without the marks the turn judgement
    # used to depend on.
    rec = await recognise(silence(0.2) + NUMBER_PCM + silence(0.1), stt_punctuation="none")
    assert [t.text for t in rec.finals] == ["it's number four two seven"]


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_a_connection_can_ask_for_transcripts_without_punctuation(emu):
    stt = client(emu, extra_params={"emulator_punctuation": "none"})
    rec = Recorder()
    session = await open_session(stt, rec)
    for frame in frames(HELLO_PCM + silence(0.1)):
        session.feed(frame)
    await session.finalize()
    await wait_for(lambda: rec.finals)
    await session.aclose()
    await stt.aclose()
    assert [t.text for t in rec.finals] == ["hi i'd like to check my order"]


@pytest.mark.parametrize("frame, retryable", [
    ({"type": "error", "error": "Invalid transcription engine: unknown engine 'Nope'"}, False),
    ({"type": "error", "error": "model openai/whisper-huge is not available"}, False),
    ({"type": "error", "error": "Invalid sample_rate: 7000 Hz is not supported for linear16"}, False),
    ({"type": "error", "error": "Transcription failed: upstream timeout"}, True),
    ({"type": "error", "error": "50001 engine crashed"}, True),  # a server code wins over the word
    ({"errors": [{"code": "40007", "title": "Invalid transcription engine"}]}, False),
    ({"errors": [{"code": "50001", "title": "Transcription failed"}]}, True),
    ({"type": "error"}, True),
])
def test_error_frames_in_either_shape_say_whether_to_retry(frame, retryable):
    from engine.providers.telnyx_stt import _error_from

    error = _error_from(frame)
    assert error.retryable is retryable
    assert "unspecified" in str(error) or (frame.get("error") or frame["errors"][0]["title"]) in str(error)


def test_an_error_message_is_kept_on_one_bounded_line():
    from engine.providers.telnyx_stt import _error_from

    error = _error_from({"type": "error", "error": "line one\nline two\r\n" + "x" * 5000})
    assert "\n" not in str(error) and "line one line two" in str(error) and len(str(error)) < 400
