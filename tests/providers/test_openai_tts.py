"""The OpenAI TTS client against the emulator's /v1/audio/speech, over real HTTP."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from engine import _audioop as audioop
from engine.providers.base import ProviderError
from engine.providers.openai_tts import OpenAITextToSpeech, OpenAITtsConfig

from .helpers import assert_no_tasks_left


def client(emu, **overrides) -> OpenAITextToSpeech:
    fields = {"api_key": SecretStr(emu.api_key), "base_url": emu.llm_base_url, **overrides}
    return OpenAITextToSpeech(OpenAITtsConfig(**fields))


async def test_pcm_is_resampled_to_8_khz_sentence_by_sentence_in_order(emu):
    tts = client(emu)
    stream = await tts.open(voice="alloy", sample_rate=8000)
    await stream.send_text("Hi there. How")
    await stream.send_text(" can I help?")
    await stream.end()
    chunks = [chunk async for chunk in stream]
    await stream.aclose()
    await tts.aclose()
    source = [(await emu.tts.synthesizer.synthesize(t, 24000))[0] for t in ("Hi there.", "How can I help?")]
    requests = emu.llm.stats.speech_requests
    await emu.close()  # the leak check counts every task, the emulator's too
    assert requests == 2  # one per sentence
    assert [c.text for c in chunks if c.text] == ["Hi there.", "How can I help?"]
    # Streaming with the ratecv state carried equals resampling everything in one go.
    expected = audioop.ratecv(source[0] + source[1], 2, 1, 24000, 8000, None)[0]
    assert b"".join(c.pcm for c in chunks) == expected
    assert len(chunks) > 2
    await assert_no_tasks_left()


async def test_aclose_mid_stream_stops_the_worker(emu):
    tts = client(emu)
    stream = await tts.open(voice="alloy", sample_rate=8000)
    await stream.send_text("A fairly long sentence that takes a while to stream out. " * 2, flush=True)
    first = await asyncio.wait_for(stream.__anext__(), 1.0)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    await tts.aclose()
    await emu.close()  # the leak check counts every task, the emulator's too
    assert first.pcm
    await assert_no_tasks_left()


async def test_server_error_surfaces_while_iterating(emu):
    tts = client(emu, extra_headers={"X-Emulator-Fault": "http_500"})
    stream = await tts.open(voice="alloy", sample_rate=8000)
    await stream.send_text("Hello.", flush=True)
    await stream.end()
    with pytest.raises(ProviderError) as caught:
        [chunk async for chunk in stream]
    await stream.aclose()
    await tts.aclose()
    assert caught.value.retryable and "500" in str(caught.value)

