"""The Telnyx TTS client against the TTS emulator, over a real WebSocket."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import ClientSession, WSMsgType
from pydantic import SecretStr

from engine import _audioop as audioop
from engine.providers.base import AudioChunk, ProviderError
from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig
from engine.providers.tts_audio import sniff_container

from .helpers import assert_no_tasks_left

VOICE = "Telnyx.NaturalHD.astra"
FIRST = "Hello there."
SECOND = "How can I help you today?"


def client(emu, **overrides) -> TelnyxTextToSpeech:
    fields = {"api_key": SecretStr(emu.api_key), "url": emu.tts_url, **overrides}
    return TelnyxTextToSpeech(TelnyxTtsConfig(**fields))


async def collect(stream) -> list[tuple[float, AudioChunk]]:
    loop = asyncio.get_running_loop()
    return [(loop.time(), chunk) async for chunk in stream]


async def test_speech_arrives_as_pcm_at_the_requested_rate_with_alignment(emu):
    tts = client(emu)
    stream = await tts.open(voice=VOICE, sample_rate=8000)
    loop = asyncio.get_running_loop()
    await stream.send_text("Hello")
    await stream.send_text(" there. How can I")
    sentence_at = loop.time()  # the first sentence is complete now
    await stream.send_text(" help you today?")
    await stream.end()
    chunks = await collect(stream)
    await stream.aclose()
    await tts.aclose()
    expected = [(await emu.tts.synthesizer.synthesize(text, 8000))[0] for text in (FIRST, SECOND)]
    await emu.close()  # the leak check counts every task, the emulator's too
    pcm = b"".join(c.pcm for _, c in chunks)
    assert stream.sample_rate == 8000
    # Exactly the speech rendered at 8 kHz, in order: no MP3, no resampling surprise.
    assert pcm == expected[0] + expected[1]
    assert 0.8 < len(pcm) / 16000 < 5.0
    assert [c.text for _, c in chunks if c.text] == [FIRST, SECOND]
    assert chunks[0][1].text == FIRST
    first_audio_ms = (chunks[0][0] - sentence_at) * 1000
    assert first_audio_ms >= 100  # never before the profile's time to first audio (late is load)
    assert len(chunks) > 3  # streamed in pieces, not one blob
    await assert_no_tasks_left()


async def test_flush_speaks_an_unfinished_sentence_before_end(emu):
    tts = client(emu)
    stream = await tts.open(voice=VOICE, sample_rate=16000)
    await stream.send_text("one moment please", flush=True)
    chunk = await asyncio.wait_for(stream.__anext__(), 1.0)
    await stream.aclose()
    await tts.aclose()
    assert chunk.text == "one moment please" and len(chunk.pcm) > 0


async def test_aclose_mid_stream_stops_quickly_and_leaves_nothing_running(emu):
    tts = client(emu)
    stream = await tts.open(voice=VOICE, sample_rate=8000)
    await stream.send_text("This is a long answer that keeps going for quite a while. " * 3)
    await stream.end()
    loop = asyncio.get_running_loop()

    flowing = asyncio.Event()

    async def consume() -> int:
        received = 0
        async for _ in stream:
            received += 1
            flowing.set()
        return received

    consumer = loop.create_task(consume())
    await asyncio.wait_for(flowing.wait(), 30)  # audio is flowing (a bound, not a timing window)
    assert not consumer.done()
    await stream.aclose()
    # Iteration ends without an exception (the bound only guards against a hang).
    received = await asyncio.wait_for(consumer, 30)
    await stream.aclose()  # idempotent
    await tts.aclose()
    with pytest.raises(ProviderError):
        await stream.send_text("more")
    await emu.close()  # the leak check counts every task, the emulator's too
    assert received >= 1
    await assert_no_tasks_left()


async def _speak(emu, text: str, *, voice: str = VOICE, rate: int = 8000, **config) -> bytes:
    tts = client(emu, **config)
    stream = await tts.open(voice=voice, sample_rate=rate)
    await stream.send_text(text)
    await stream.end()
    chunks = await collect(stream)
    await stream.aclose()
    await tts.aclose()
    return b"".join(c.pcm for _, c in chunks)


def _seconds(pcm: bytes, rate: int = 8000) -> float:
    return len(pcm) / 2 / rate


TONE_S = 0.6  # bench/emulators/tone-24k.mp3


@pytest.mark.parametrize("how", ["kokoro voice", "answer_format=mp3", "asked for mp3"])
async def test_mp3_is_decoded_and_resampled_to_the_asked_rate(emu, how):
    """KokoroTTS sends MP3 whatever was asked [3P], and the SDK lists mp3: it plays, at 8 kHz."""
    voice, config = VOICE, {}
    if how == "kokoro voice":
        voice = "Telnyx.KokoroTTS.af_heart"
    elif how == "answer_format=mp3":
        emu.tts.answer_format = "mp3"
    else:
        config = {"audio_format": "mp3"}
    pcm = await _speak(emu, f"{FIRST} {SECOND}", voice=voice, **config)

    # Two sentences, each one 0.6 s MP3 file (24 kHz) decoded and resampled to 8 kHz.
    assert abs(_seconds(pcm) - 2 * TONE_S) < 0.05
    assert audioop.rms(pcm, 2) > 1000  # a tone, not silence or noise of the wrong format
    assert audioop.rms(pcm[:1600], 2) < audioop.rms(pcm[3200:4800], 2)  # it fades in: decoded in order


@pytest.mark.parametrize("answer, asked_format, answer_rate", [
    ("wav", "linear16", 16000),  # WAV at a rate other than the one asked: the header says which
    ("wav", "wav", None),
    ("asked", "pcm", None),  # the SDK's pcm: no sample_rate asked, 24 kHz documented
])
async def test_pcm_and_wav_at_another_rate_are_resampled(emu, answer, asked_format, answer_rate):
    expected = (await emu.tts.synthesizer.synthesize(FIRST, 8000))[0]
    emu.tts.answer_format = answer
    emu.tts.answer_rate = answer_rate
    expected, pcm = expected, await _speak(emu, FIRST, audio_format=asked_format)

    assert abs(_seconds(pcm) - _seconds(expected)) < 0.03
    assert not pcm.startswith(b"RIFF")  # the header is not played as audio
    assert abs(audioop.rms(pcm, 2) - audioop.rms(expected, 2)) < 0.2 * audioop.rms(expected, 2)


def test_the_query_asks_for_a_format_the_docs_or_the_sdk_name():
    docs = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=SecretStr("k")))
    assert docs.query("natural_hd", 8000) == {"voice": "Telnyx.NaturalHD.astra", "audio_format": "linear16",
                                              "sample_rate": "8000"}
    for fmt in ("pcm", "wav", "mp3"):  # the SDK's formats, and it has no sample_rate
        sdk = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=SecretStr("k"), audio_format=fmt))
        assert sdk.query("natural_hd", 8000) == {"voice": "Telnyx.NaturalHD.astra", "audio_format": fmt}


async def test_mp3_without_a_decoder_is_a_clear_final_error(emu, monkeypatch):
    import engine.providers.tts_audio as tts_audio

    monkeypatch.setattr(tts_audio, "_load_mp3_decoder", lambda: None)

    with pytest.raises(ProviderError) as caught:
        await _speak(emu, FIRST, voice="Telnyx.KokoroTTS.af_heart")
    error = caught.value

    assert "MP3" in str(error) and "miniaudio" in str(error) and not error.retryable


def test_an_unplayable_format_is_named_and_final():
    from engine.providers.tts_audio import IncomingAudio

    audio = IncomingAudio(rate=8000, raw_rate=8000, provider="p", voice="v")
    with pytest.raises(ProviderError) as caught:
        audio.feed(b"OggS" + bytes(60))
    assert "Ogg" in str(caught.value) and not caught.value.retryable


@pytest.mark.parametrize("fault, expected", [("error_frame", "emulated synthesis failure"),
                                             ("disconnect", "connection lost")])
async def test_mid_stream_failures_raise(emu, fault, expected):
    tts = client(emu, extra_params={"emulator_fault": fault})
    stream = await tts.open(voice=VOICE, sample_rate=8000)
    await stream.send_text("Hello there. How can I help you today?")
    await stream.end()
    received = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in stream:
            received.append(chunk)
    await stream.aclose()
    await tts.aclose()
    assert len(received) == 1  # the first chunk made it, then the failure
    assert expected in str(caught.value)


async def test_stalled_provider_times_out(emu):
    emu.faults.arm("slow", "tts")
    tts = client(emu, receive_timeout_s=0.3)
    stream = await tts.open(voice=VOICE, sample_rate=8000)
    await stream.send_text("Hello there.")
    with pytest.raises(ProviderError, match="no audio"):
        await collect(stream)
    await stream.aclose()
    await tts.aclose()


async def test_handshake_refusals_are_not_retryable(emu):
    for tts, voice in ((client(emu, api_key=SecretStr("nope")), VOICE), (client(emu), "")):
        with pytest.raises(ProviderError) as caught:
            await tts.open(voice=voice, sample_rate=8000)
        assert not caught.value.retryable
        await tts.aclose()


async def test_emulator_requires_the_handshake_frame_first(emu):
    async with ClientSession() as http, http.ws_connect(
            emu.tts_url, params={"voice": VOICE, "audio_format": "linear16"},
            headers={"Authorization": f"Bearer {emu.api_key}"}) as ws:
        await ws.send_str('{"text":"Hello."}')
        msg = await ws.receive(timeout=1)
        assert msg.type is WSMsgType.TEXT and "handshake" in orjson.loads(msg.data)["error"]


def test_container_sniffing():
    assert sniff_container(b"ID3\x04\x00" + bytes(20)) == "MP3"
    assert sniff_container(b"\xff\xfb\x90\x64" + bytes(20)) == "MP3"
    assert sniff_container(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "WAV"
    # PCM that happens to start with a small negative sample is still PCM.
    assert sniff_container(b"\xff\xff\xfe\xff" + bytes(20)) is None
    assert sniff_container(b"\xff\xef\x00\x00" + bytes(20)) is None
    assert sniff_container(bytes(24)) is None


@pytest.mark.parametrize("send_flush, honour_flush", [(True, True), (True, False), (False, True)])
async def test_flush_is_documented_not_in_the_sdk_and_nothing_is_lost_without_it(emu, send_flush, honour_flush):
    """"flush": true is on Telnyx's TTS messages page, not in the SDK's client event. Where it
    works, a flushed piece is spoken on its own; where it is not sent or not honoured, the piece
    waits for the next sentence end, and all the text is still spoken."""
    emu.tts.honour_flush = honour_flush
    tts = client(emu, send_flush=send_flush)
    stream = await tts.open(voice=VOICE, sample_rate=8000)
    await stream.send_text("Well, let me see", flush=True)
    await stream.send_text(" now.")
    await stream.end()
    chunks = await collect(stream)
    await stream.aclose()
    await tts.aclose()
    texts = [c.text for _, c in chunks if c.text]

    flushed = send_flush and honour_flush
    assert texts == (["Well, let me see", "now."] if flushed else ["Well, let me see now."])
