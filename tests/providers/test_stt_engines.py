"""The STT emulator behaves like the engine a connection names, and never better (§4.1).

Raw WebSocket frames, so the tests see exactly which fields each engine sends."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from bench.signals import silence
from engine.providers.stt_engines import ENGINES, UNKNOWN, stt_engine

from .helpers import FRAME, HELLO, HELLO_PCM, frames, wait_for


class RawStream:
    """One emulator connection: 100 ms binary frames out, JSON results in."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.results: list[dict] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.results.append(orjson.loads(msg.data))

    async def send_audio(self, pcm: bytes, *, speed: float = 4.0) -> None:
        for chunk in frames(pcm, 5 * FRAME):
            await self.ws.send_bytes(chunk)
            await asyncio.sleep(0.1 / speed)  # paced as a caller would be (virtual time: free)

    @property
    def finals(self) -> list[dict]:
        return [r for r in self.results if r.get("is_final")]

    @property
    def interims(self) -> list[dict]:
        return [r for r in self.results if not r.get("is_final")]


async def connect(emu, http: aiohttp.ClientSession, engine: str) -> RawStream:
    params = {"transcription_engine": engine, "input_format": "linear16", "sample_rate": "8000",
              "interim_results": "true"}
    ws = await http.ws_connect(emu.stt_url, params=params, headers={"Authorization": f"Bearer {emu.api_key}"})
    return RawStream(ws)


def test_table_matches_telnyx_support_table():
    # The responses and interim-results pages: Finalize/KeepAlive Deepgram only; interims on
    # Deepgram, Speechmatics, Soniox; speech_final/utterance_end Deepgram only.
    assert [e.name for e in ENGINES.values() if e.finalize] == ["Deepgram"]
    assert [e.name for e in ENGINES.values() if e.keepalive] == ["Deepgram"]
    assert [e.name for e in ENGINES.values() if e.speech_final] == ["Deepgram"]
    assert {e.name for e in ENGINES.values() if e.interim_results} == {"Deepgram", "Speechmatics", "Soniox"}
    assert stt_engine("deepgram").default_model == "nova-3"
    assert stt_engine("Azure") is UNKNOWN and not UNKNOWN.finalize and not UNKNOWN.interim_results
    for engine in ENGINES.values():
        assert engine.final_lag_ms >= engine.silence_window_ms
        assert engine.final_wait_s > engine.final_lag_ms / 1000


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_deepgram_honours_finalize_streams_interims_and_sends_speech_final(emu):
    async with aiohttp.ClientSession() as http:
        stream = await connect(emu, http, "Deepgram")
        await stream.send_audio(silence(0.2) + HELLO_PCM + silence(0.1))
        await stream.ws.send_str('{"type":"KeepAlive"}')
        await stream.ws.send_str('{"type":"Finalize"}')
        await wait_for(lambda: stream.finals)
        forced = stream.finals[0]
        await stream.send_audio(silence(0.2) + HELLO_PCM + silence(0.7))  # own endpointing (500 ms)
        await wait_for(lambda: len(stream.finals) == 2)
        await stream.ws.close()
        await stream.reader
        stats = emu.stt.stats
    assert stream.interims and all(r["confidence"] == 0.0 for r in stream.interims)  # partials: 0.0
    assert forced["transcript"] == HELLO and forced["speech_final"] is False
    assert stream.finals[1]["transcript"] == HELLO and stream.finals[1]["speech_final"] is True
    assert stats.finalizes == 1 and stats.finalizes_ignored == 0 and stats.keepalives == 1


@pytest.mark.parametrize("engine", ["Telnyx", "Google"])
@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_finals_only_engines_ignore_finalize_and_interims_and_send_no_speech_final(emu, engine):
    table = stt_engine(engine)

    async with aiohttp.ClientSession() as http:
        stream = await connect(emu, http, engine)
        await stream.send_audio(silence(0.2) + HELLO_PCM + silence(0.1))
        await stream.ws.send_str('{"type":"Finalize"}')
        await stream.ws.send_str('{"type":"KeepAlive"}')
        # Less trailing silence than the engine's window: no final, whatever was asked.
        await stream.send_audio(silence(table.silence_window_ms / 1000 - 0.2))
        await asyncio.sleep(0.3)  # virtual time: time for a wrong final to arrive (the window is audio, not time)
        assert not stream.results
        await stream.send_audio(silence(0.3))  # the window has passed
        await wait_for(lambda: stream.finals)
        await stream.ws.close()
        await stream.reader
        stats = emu.stt.stats
    assert stats.finalizes == stats.finalizes_ignored == 1
    assert not stream.interims
    (final,) = stream.results
    assert "speech_final" not in final and "utterance_end" not in final
    expected = HELLO if table.punctuation else HELLO.replace(",", "").replace(".", "")
    assert final["transcript"] == expected


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_a_finalize_with_nothing_new_said_gets_nothing_from_a_finals_only_engine(emu):
    async with aiohttp.ClientSession() as http:
        stream = await connect(emu, http, "Telnyx")
        await stream.send_audio(silence(0.5))
        await stream.ws.send_str('{"type":"Finalize"}')
        await stream.send_audio(silence(1.5))
        await stream.ws.send_str('{"type":"CloseStream"}')  # not documented for Telnyx: ignored
        await asyncio.sleep(0.1)  # virtual time: time for a wrong close to arrive
        assert not stream.ws.closed
        await stream.ws.close()
        await stream.reader
    assert stream.results == []

