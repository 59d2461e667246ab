"""A provider client's open() cancelled as its socket connects closes the socket, or returns it:
never both drops it and raises (issue 13's "Unclosed connection" ERROR lines). Each client against its emulator over
a real socket; the caller bounds open() with wait_for, as a caller may."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from engine.providers.deepgram_stt import DeepgramOptions, DeepgramSpeechToText
from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig
from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig
from tests.fixtures.sockets import Sockets, unclosed_reports


def _tts(emu: Any, session: aiohttp.ClientSession) -> Callable[[], Awaitable[Any]]:
    tts = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=SecretStr(emu.api_key), url=emu.tts_url), session=session)
    return lambda: tts.open(voice="Telnyx.NaturalHD.astra", sample_rate=8000)


def _telnyx_stt(emu: Any, session: aiohttp.ClientSession) -> Callable[[], Awaitable[Any]]:
    stt = TelnyxSpeechToText(TelnyxSttConfig(api_key=SecretStr(emu.api_key), url=emu.stt_url), session=session)
    return lambda: stt.open(sample_rate=8000, on_transcript=lambda t: None, on_error=lambda e: None)


def _deepgram_stt(emu: Any, session: aiohttp.ClientSession) -> Callable[[], Awaitable[Any]]:
    stt = DeepgramSpeechToText(DeepgramOptions(api_key=SecretStr(emu.api_key), url=emu.deepgram_url),
                               session=session)
    return lambda: stt.open(sample_rate=8000, on_transcript=lambda t: None, on_error=lambda e: None)


@pytest.mark.parametrize("client", [_tts, _telnyx_stt, _deepgram_stt])
async def test_open_cancelled_as_its_socket_connects_closes_it(emu, client):
    async with unclosed_reports() as unclosed, aiohttp.ClientSession() as session:
        sockets = Sockets(session)
        opening = asyncio.ensure_future(asyncio.wait_for(client(emu, session)(), 5.0))
        sockets.then = opening.cancel
        result = (await asyncio.gather(opening, return_exceptions=True))[0]
        if not isinstance(result, BaseException):
            await result.aclose()  # handed over (3.11's wait_for returns what completed): the caller's
        await asyncio.sleep(0.1)  # (a close under way ends)
        closed = sockets.closed()
        del opening, result
    assert unclosed == []
    assert closed == [True]  # by open() itself, or by the caller it returned the socket to
