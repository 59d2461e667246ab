"""OpenAI ``audio.speech`` as a streaming :class:`TtsStream` (any compatible server).

The endpoint takes whole texts, so text is cut into sentences as it arrives (a ``flush``
or :meth:`end` sends what is buffered) and each sentence is one request, made in order
by one worker task. ``response_format="pcm"`` is PCM16 at 24 kHz (``source_rate``),
streamed and resampled to the stream's rate with ``ratecv``, its state carried across
chunks and sentences so the joins do not click.
"""

from __future__ import annotations

import asyncio
import re

import openai
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .. import _audioop as audioop
from .base import AudioChunk, ProviderError, TextToSpeech, TtsStream
from .openai_chat import _ERRORS, provider_error

PROVIDER = "openai-tts"
_SENTENCE = re.compile(r".*?[.?!]+[\"')\]]*\s+", re.S)
_END = object()


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
    def __init__(self, config: OpenAITtsConfig, *, client: openai.AsyncOpenAI | None = None) -> None:
        self.config = config
        self._client = client or openai.AsyncOpenAI(
            api_key=config.api_key.get_secret_value(),
            base_url=config.base_url,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            default_headers=config.extra_headers or None,
        )

    async def open(self, *, voice: str, sample_rate: int) -> OpenAITtsStream:
        return OpenAITtsStream(self._client, self.config, voice=voice, sample_rate=sample_rate)

    async def aclose(self) -> None:
        await self._client.close()


class OpenAITtsStream(TtsStream):
    def __init__(self, client: openai.AsyncOpenAI, config: OpenAITtsConfig, *, voice: str, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._client = client
        self._config = config
        self._voice = voice
        self._text = ""
        self._sentences: asyncio.Queue[str | object] = asyncio.Queue()
        self._out: asyncio.Queue[AudioChunk | ProviderError | object] = asyncio.Queue()
        self._ratecv_state = None
        self._odd = b""
        self._ended = False
        self._closed = False
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def send_text(self, text: str, *, flush: bool = False) -> None:
        if self._closed or self._ended:
            raise ProviderError(PROVIDER, "stream is closed", retryable=False)
        self._text += text
        if flush:
            self._queue(self._text)
            self._text = ""
            return
        end = 0
        for match in _SENTENCE.finditer(self._text):
            self._queue(match.group())
            end = match.end()
        self._text = self._text[end:]

    async def end(self) -> None:
        if self._ended or self._closed:
            return
        self._ended = True
        self._queue(self._text)
        self._text = ""
        self._sentences.put_nowait(_END)

    def _queue(self, text: str) -> None:
        text = text.strip()
        if text:
            self._sentences.put_nowait(text)

    def __aiter__(self) -> OpenAITtsStream:
        return self

    async def __anext__(self) -> AudioChunk:
        if self._closed:
            raise StopAsyncIteration
        item = await self._out.get()
        if isinstance(item, AudioChunk):
            return item
        if isinstance(item, ProviderError):
            raise item
        raise StopAsyncIteration

    async def _work(self) -> None:
        try:
            while True:
                sentence = await self._sentences.get()
                if sentence is _END:
                    break
                await self._speak(sentence)  # type: ignore[arg-type]
        except _ERRORS as exc:
            self._out.put_nowait(provider_error(PROVIDER, exc))
        except ProviderError as exc:
            self._out.put_nowait(exc)
        except Exception as exc:  # the reader must hear of any failure, or it waits forever
            self._out.put_nowait(ProviderError(PROVIDER, f"{exc.__class__.__name__}: {exc}"))
        self._out.put_nowait(_END)

    async def _speak(self, sentence: str) -> None:
        config = self._config
        options = {}
        if config.speed is not None:
            options["speed"] = config.speed
        if config.instructions:
            options["instructions"] = config.instructions
        async with self._client.audio.speech.with_streaming_response.create(
            model=config.model, voice=self._voice, input=sentence, response_format="pcm", **options
        ) as response:
            text: str | None = sentence
            async for data in response.iter_bytes():
                pcm = self._resample(data)
                if pcm:
                    self._out.put_nowait(AudioChunk(pcm, text))
                    text = None

    def _resample(self, data: bytes) -> bytes:
        if self._odd:
            data = self._odd + data
        cut = len(data) & ~1
        data, self._odd = data[:cut], data[cut:]
        if not data or self._config.source_rate == self.sample_rate:
            return data
        pcm, self._ratecv_state = audioop.ratecv(
            data, 2, 1, self._config.source_rate, self.sample_rate, self._ratecv_state
        )
        return pcm

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        self._out.put_nowait(_END)  # wakes a reader blocked in __anext__
