"""A :class:`TtsStream` for engines that take whole sentences (OpenAI ``audio.speech``, piper, espeak-ng).

Text is cut into sentences as it arrives (a ``flush`` or :meth:`end` sends what is
buffered); one worker task renders them in order and queues the audio, resampled from
the engine's rate with ``ratecv``, its state carried across chunks and sentences so the
joins do not click. :meth:`aclose` (barge-in) cancels the worker: whatever it was
rendering is dropped and nothing more is queued.
"""

from __future__ import annotations

import asyncio
import re
from abc import abstractmethod
from collections.abc import AsyncIterator

from .. import _audioop as audioop
from .base import AudioChunk, ProviderError, TtsStream

_SENTENCE = re.compile(r".*?[.?!]+[\"')\]”’]*\s+", re.S)
_END = object()


class SentenceTtsStream(TtsStream):
    provider = "tts"

    def __init__(self, *, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._text = ""
        self._sentences: asyncio.Queue[str | object] = asyncio.Queue()
        self._out: asyncio.Queue[AudioChunk | ProviderError | object] = asyncio.Queue()
        self._ratecv_state: tuple[int, tuple[tuple[int, int], ...]] | None = None
        self._source_rate = 0
        self._odd = b""
        self._ended = False
        self._closed = False
        self._worker = asyncio.get_running_loop().create_task(self._work())

    @abstractmethod
    def render(self, sentence: str) -> AsyncIterator[tuple[bytes, int]]:
        """A sentence's audio as (PCM16 bytes, sample rate) pieces, as the engine makes them."""

    async def send_text(self, text: str, *, flush: bool = False) -> None:
        if self._closed or self._ended:
            raise ProviderError(self.provider, "stream is closed", retryable=False)
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
        text = " ".join(text.split())
        if text:
            self._sentences.put_nowait(text)

    def __aiter__(self) -> SentenceTtsStream:
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
                text: str | None = sentence  # type: ignore[assignment]
                async for data, rate in self.render(sentence):  # type: ignore[arg-type]
                    pcm = self._resample(data, rate)
                    if pcm:
                        self._out.put_nowait(AudioChunk(pcm, text))
                        text = None
        except ProviderError as exc:
            self._out.put_nowait(exc)
        except Exception as exc:  # the reader must hear of any failure, or it waits forever
            self._out.put_nowait(ProviderError(self.provider, f"{exc.__class__.__name__}: {exc}"))
        self._out.put_nowait(_END)

    def _resample(self, data: bytes, rate: int) -> bytes:
        if self._odd:
            data = self._odd + data
        cut = len(data) & ~1
        data, self._odd = data[:cut], data[cut:]
        if rate != self._source_rate:
            self._source_rate, self._ratecv_state = rate, None
        if not data or rate == self.sample_rate:
            return data
        pcm, self._ratecv_state = audioop.ratecv(data, 2, 1, rate, self.sample_rate, self._ratecv_state)
        return pcm

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        self._out.put_nowait(_END)  # wakes a reader blocked in __anext__
