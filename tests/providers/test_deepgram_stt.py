"""Deepgram's direct streaming STT client against the Deepgram emulator, over a real
WebSocket: the documented handshake, messages and control frames (issue 18 item 3)."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from bench.emulators import deepgram as dg_emulator
from bench.signals import silence
from engine.providers.base import ProviderError
from engine.providers.deepgram_stt import DeepgramOptions, DeepgramSpeechToText

from .helpers import HELLO, HELLO_PCM, NUMBER, NUMBER_PCM, assert_no_tasks_left, feed_paced, wait_for
from .test_telnyx_stt import Recorder


def client(emu, **overrides) -> DeepgramSpeechToText:
    return DeepgramSpeechToText(DeepgramOptions(**{"api_key": SecretStr(emu.api_key), "url": emu.deepgram_url,
                                                   **overrides}))


async def open_session(stt, rec, rate=8000):
    return await stt.open(sample_rate=rate, on_transcript=rec.on_transcript, on_error=rec.on_error)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_the_handshake_carries_the_documented_options_and_token_auth(emu):
    stt = DeepgramSpeechToText(DeepgramOptions(api_key=SecretStr("k")))
    assert stt.query(8000) == {
        "model": "nova-3", "language": "en", "encoding": "mulaw", "sample_rate": "8000", "channels": "1",
        "interim_results": "true", "endpointing": "500", "vad_events": "true", "punctuate": "true",
        "smart_format": "false", "utterance_end_ms": "1000"}
    # utterance_end_ms needs interim results: not asked without them.
    assert "utterance_end_ms" not in DeepgramSpeechToText(
        DeepgramOptions(api_key=SecretStr("k"), interim_results=False, endpointing=False)).query(16000)

    stt = client(emu)  # (the emulator refuses anything but "Token <key>": see below)
    rec = Recorder()
    session = await open_session(stt, rec)
    await session.aclose()
    await stt.aclose()
    assert emu.deepgram.stats.connections == 1


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_interims_then_a_final_from_finalize_then_speech_final_on_its_own_endpointing(emu):
    stt = client(emu, endpointing=300)
    rec = Recorder()
    session = await open_session(stt, rec)
    await feed_paced(session, silence(0.2) + HELLO_PCM + silence(0.1), speed=4.0)
    await session.finalize()
    await wait_for(lambda: rec.finals)
    await feed_paced(session, silence(0.3) + NUMBER_PCM + silence(0.6), speed=4.0)
    await wait_for(lambda: len([t for t in rec.finals if t.text]) >= 2)
    await session.aclose()
    await stt.aclose()
    stats = emu.deepgram.stats
    await emu.close()  # the leak check below counts every task, the emulator's own included
    texts = [t for t in rec.finals if t.text]
    assert [t.text for t in texts] == [HELLO, NUMBER]
    assert texts[0].speech_final is False  # a Finalize's final is not the speaker's end
    assert texts[1].speech_final is True  # its own endpointing after 300 ms of silence
    assert rec.interims and all(HELLO.startswith(t.text) or NUMBER.startswith(t.text) for t in rec.interims)
    assert stats.finalizes == 1 and stats.speech_started_sent == 2 and stats.close_streams == 1
    assert not rec.errors
    await assert_no_tasks_left()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_raw_messages_follow_the_documented_shapes(emu):
    """Straight over a socket: Results, SpeechStarted, Finalize's from_finalize, UtteranceEnd,
    KeepAlive answered by nothing, CloseStream answered by Metadata and a normal close."""
    async with aiohttp.ClientSession() as http:
        params = {"encoding": "linear16", "sample_rate": "8000", "interim_results": "true",
                  "endpointing": "300", "utterance_end_ms": "1000", "vad_events": "true", "punctuate": "true"}
        ws = await http.ws_connect(emu.deepgram_url, params=params,
                                   headers={"Authorization": f"Token {emu.api_key}"})
        await ws.send_str('{"type": "KeepAlive"}')
        pcm = silence(0.2) + HELLO_PCM
        for i in range(0, len(pcm), 1600):
            await ws.send_bytes(pcm[i:i + 1600])
        await ws.send_str('{"type": "Finalize"}')
        await ws.send_bytes(silence(1.6))  # past utterance_end_ms after the last word
        await ws.send_str('{"type": "CloseStream"}')
        messages = [orjson.loads(msg.data) async for msg in ws]
        code = ws.close_code

    kinds = [m["type"] for m in messages]
    assert kinds[0] == "SpeechStarted" and isinstance(messages[0]["timestamp"], float)
    finals = [m for m in messages if m["type"] == "Results" and m["is_final"]]
    assert finals[0]["from_finalize"] is True and finals[0]["channel"]["alternatives"][0]["transcript"] == HELLO
    assert {"start", "duration", "channel_index", "metadata", "speech_final"} <= set(finals[0])
    ends = [m for m in messages if m["type"] == "UtteranceEnd"]
    assert len(ends) == 1 and ends[0]["last_word_end"] == pytest.approx(1.4, abs=0.05)
    assert kinds[-1] == "Metadata" and messages[-1]["channels"] == 1 and code == 1000
    assert "KeepAlive" not in kinds


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_refusals_are_http_statuses_and_an_idle_stream_is_closed_with_net_0001(emu, monkeypatch):
    monkeypatch.setattr(dg_emulator, "IDLE_TIMEOUT_S", 0.3)
    async with aiohttp.ClientSession() as http:
        statuses = []
        bearer, token = {"Authorization": f"Bearer {emu.api_key}"}, {"Authorization": f"Token {emu.api_key}"}
        for headers, params in [(bearer, {"encoding": "mulaw", "sample_rate": "8000"}),
                                (token, {"encoding": "mulaw"}),
                                (token, {"encoding": "opus", "sample_rate": "8000"})]:
            try:
                await http.ws_connect(emu.deepgram_url, params=params, headers=headers)
            except aiohttp.WSServerHandshakeError as exc:
                statuses.append(exc.status)
    stt = client(emu, keepalive_s=5.0)
    rec = Recorder()
    session = await open_session(stt, rec)
    await wait_for(lambda: rec.errors, timeout=3)
    await session.aclose()
    # With KeepAlive more often than the server's idle limit, the stream stays open: four of them
    # at 0.1 s are past the 0.3 s limit, and the stream is still up.
    kept = client(emu, keepalive_s=0.1)
    rec2 = Recorder()
    session2 = await open_session(kept, rec2)
    await wait_for(lambda: emu.deepgram.stats.keepalives >= 4)
    assert rec2.errors == []
    await session2.aclose()
    await stt.aclose()
    await kept.aclose()

    assert statuses == [401, 400, 400]
    ((_, error),) = rec.errors
    assert isinstance(error, ProviderError) and "1011" in str(error) and "NET-0001" in str(error)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_local_mode_and_numbers_in_words_reach_the_same_recogniser(emu):
    # The emulator's recogniser is the Telnyx emulator's: the same registered lines read alike.
    stt = client(emu, encoding="linear16")
    rec = Recorder()
    session = await open_session(stt, rec)
    await feed_paced(session, NUMBER_PCM + silence(0.1), speed=8.0)
    await session.finalize()
    await wait_for(lambda: rec.finals)
    await session.aclose()
    await stt.aclose()
    assert [t.text for t in rec.finals] == [NUMBER]
