"""Short fixed lines (filler, apology) synthesized once per voice and rate, shared by calls.

They must play exactly when a provider is failing, so they are made ahead of time;
if the TTS is down even then, the agent goes without them rather than waiting. The same
cache keeps the pieces replies often open with (:mod:`.openers`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable

from ..providers.base import ProviderError, TextToSpeech
from .openers import OpenerCache
from .usage import CallUsage

log = logging.getLogger(__name__)

Key = tuple[str, int, str]


class PhraseCache:
    def __init__(self, tts: TextToSpeech, *, timeout_s: float = 10.0) -> None:
        self._tts = tts
        self._timeout_s = timeout_s
        self._audio: dict[Key, bytes] = {}
        self._pending: dict[Key, asyncio.Future[None]] = {}
        self.openers = OpenerCache(self.synthesize)

    def get(self, voice: str, sample_rate: int, text: str) -> bytes | None:
        return self._audio.get((voice, sample_rate, text))

    async def warm(self, voice: str, sample_rate: int, texts: Iterable[str], usage: CallUsage | None = None) -> None:
        """Synthesize whatever is not cached yet; concurrent callers share one synthesis. What a
        synthesis uses of the provider is added to the ``usage`` of the call that started it."""
        waits = []
        for text in texts:
            key = (voice, sample_rate, text)
            if key in self._audio:
                continue
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = asyncio.ensure_future(self._synthesize(key, usage))
                pending.add_done_callback(functools.partial(self._settled, key))
            waits.append(pending)
        if waits:
            await asyncio.gather(*(asyncio.shield(w) for w in waits), return_exceptions=True)

    async def aclose(self) -> None:
        """Before the TTS's HTTP session closes (a server shutting down): the syntheses still
        running, fixed lines' and openings', stop."""
        pending = list(self._pending.values())
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, self.openers.aclose(), return_exceptions=True)

    def _settled(self, key: Key, _future: asyncio.Future[None]) -> None:
        self._pending.pop(key, None)

    async def _synthesize(self, key: Key, usage: CallUsage | None) -> None:
        audio = await self.synthesize(*key, usage)
        if audio:
            self._audio[key] = audio

    async def synthesize(self, voice: str, sample_rate: int, text: str, usage: CallUsage | None) -> bytes | None:
        """``text`` spoken whole, or None (logged) when the TTS fails to."""
        try:
            async with asyncio.timeout(self._timeout_s):
                stream = await self._tts.open(voice=voice, sample_rate=sample_rate)
                try:
                    await stream.send_text(text, flush=True)
                    if usage is not None:
                        usage.tts_characters += len(text)
                    await stream.end()
                    audio = b"".join([chunk.pcm async for chunk in stream])
                    if usage is not None:
                        usage.tts_bytes += len(audio)
                finally:
                    await stream.aclose()
        except (ProviderError, TimeoutError, OSError) as exc:
            log.warning("could not synthesize a line of %d characters for voice %s: %s", len(text), voice, exc)
            return None
        return audio or None
