"""OpenAI ``audio.speech`` as a streaming :class:`TtsStream` (any compatible server).

The endpoint takes whole texts, so this is a :class:`SentenceTtsStream`: each sentence is
one request, made in order. ``response_format="pcm"`` is PCM16 at 24 kHz (``source_rate``),
streamed and resampled to the stream's rate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._sentence_tts import SentenceTtsStream
from .base import TextToSpeech
from .openai_chat import _ERRORS, provider_error
from .voices import VoiceCatalogue, openai_catalogue

PROVIDER = "openai-tts"


class OpenAITtsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini-tts"
    speed: float | None = Field(None, ge=0.25, le=4.0)
    instructions: str | None = None
    source_rate: int = Field(24000, description="Rate of the server's `pcm` format (OpenAI: 24 kHz).")
    timeout_s: float = Field(15.0, gt=0)
    max_retries: int = Field(0, ge=0)
    extra_headers: dict[str, str] = Field(default_factory=dict)


class OpenAITextToSpeech(TextToSpeech):
    def __init__(self, config: OpenAITtsConfig, *, client: openai.AsyncOpenAI | None = None,
                 voices: VoiceCatalogue | None = None) -> None:
        self.config = config
        self.voices = voices or openai_catalogue()
        self._client = client or openai.AsyncOpenAI(
            api_key=config.api_key.get_secret_value(),
            base_url=config.base_url,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            default_headers=config.extra_headers or None,
        )

    async def open(self, *, voice: str, sample_rate: int) -> OpenAITtsStream:
        # A Telnyx voice (the built-in personalities') is spoken with OpenAI's default voice.
        return OpenAITtsStream(self._client, self.config, voice=self.voices.speak_as(voice), sample_rate=sample_rate)

    async def aclose(self) -> None:
        await self._client.close()


class OpenAITtsStream(SentenceTtsStream):
    """One request per sentence; see :class:`SentenceTtsStream` for the cutting and resampling."""

    provider = PROVIDER

    def __init__(self, client: openai.AsyncOpenAI, config: OpenAITtsConfig, *, voice: str, sample_rate: int) -> None:
        self._client = client
        self._config = config
        self._voice = voice
        super().__init__(sample_rate=sample_rate)

    async def render(self, sentence: str) -> AsyncIterator[tuple[bytes, int]]:
        config = self._config
        options: dict[str, Any] = {}
        if config.speed is not None:
            options["speed"] = config.speed
        if config.instructions:
            options["instructions"] = config.instructions
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                model=config.model, voice=self._voice, input=sentence, response_format="pcm", **options
            ) as response:
                async for data in response.iter_bytes():
                    yield data, config.source_rate
        except _ERRORS as exc:
            raise provider_error(PROVIDER, exc) from None
