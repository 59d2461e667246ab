"""Offline text-to-speech through an ``espeak-ng`` subprocess: robotic, but ≈4 ms per second of audio.

One process per sentence (started without blocking the loop, see :mod:`.childproc`; ``--stdout``:
a WAV whose size fields are bogus because it is
written as it is made), its audio streamed as it arrives and resampled from espeak's
rate (22050 Hz for the en voices) to the call's. Barge-in kills the process.

Licence: espeak-ng is GPL-3.0-or-later, so it is only ever run as a separate program,
never linked or imported. Install it with the system's package manager
(``apt-get install espeak-ng``).
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from ._sentence_tts import SentenceTtsStream
from .base import ProviderError, TextToSpeech
from .childproc import spawn
from .voices import espeak_catalogue

PROVIDER = "espeak-tts"
READ_BYTES = 4096


class EspeakTtsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    binary: str = "espeak-ng"
    voice: str = Field("en-us", description="espeak-ng voice (-v) for agents whose voice is not an espeak-ng one.")
    words_per_minute: int = Field(165, ge=80, le=450)


def find_espeak(binary: str = "espeak-ng") -> str | None:
    return shutil.which(binary)


class EspeakTextToSpeech(TextToSpeech):
    def __init__(self, config: EspeakTtsConfig | None = None) -> None:
        self.config = config or EspeakTtsConfig()
        path = find_espeak(self.config.binary)
        if path is None:
            raise ProviderError(PROVIDER, f"{self.config.binary} is not installed "
                                          "(apt-get install espeak-ng, or choose another TTS)", retryable=False)
        self.path = path
        self.voices = espeak_catalogue(self.config.voice, self.config.binary)  # lists the installed voices once

    async def open(self, *, voice: str, sample_rate: int) -> EspeakTtsStream:
        return EspeakTtsStream(self.path, self.config, voice=self.voices.speak_as(voice), sample_rate=sample_rate)

    async def aclose(self) -> None:
        pass


class EspeakTtsStream(SentenceTtsStream):
    provider = PROVIDER

    def __init__(self, path: str, config: EspeakTtsConfig, *, voice: str, sample_rate: int) -> None:
        super().__init__(sample_rate=sample_rate)
        self._argv = (path, "-v", voice, "-s", str(config.words_per_minute), "-b", "1", "--stdout")

    async def render(self, sentence: str) -> AsyncIterator[tuple[bytes, int]]:
        try:
            # Text on stdin, not argv: a sentence starting with "-" is not an option.
            proc = await spawn(self._argv, stdin=sentence.encode())
        except OSError as exc:
            raise ProviderError(PROVIDER, f"cannot start {self._argv[0]}: {exc}") from None
        try:
            head = b""
            header = None
            while header is None:
                data = await proc.stdout.read(READ_BYTES)
                if not data:
                    raise ProviderError(PROVIDER, f"no audio (exit status {await proc.wait()})")
                head += data
                header = parse_wav_header(head)
            rate, offset = header
            yield head[offset:], rate
            while data := await proc.stdout.read(READ_BYTES):
                yield data, rate
            if await proc.wait() != 0:
                raise ProviderError(PROVIDER, f"exit status {proc.returncode}")
        finally:
            if proc.returncode is None:  # cancelled (barge-in) or failed: stop it now
                proc.kill()
                await proc.wait()


def parse_wav_header(data: bytes) -> tuple[int, int] | None:
    """(sample rate, offset of the samples) of a PCM16 mono WAV, once ``data`` holds the
    whole header; None until then. Sizes are ignored: a streamed WAV's are placeholders."""
    if len(data) < 12:
        return None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ProviderError(PROVIDER, "output is not a WAV stream", retryable=False)
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"data":
            if fmt is None:
                raise ProviderError(PROVIDER, "WAV data before its format", retryable=False)
            return fmt[2], pos + 8
        if chunk == b"fmt ":
            if len(data) < pos + 8 + 16:
                return None
            fmt = struct.unpack_from("<HHIIHH", data, pos + 8)
            if fmt[0] != 1 or fmt[1] != 1 or fmt[5] != 16:
                raise ProviderError(PROVIDER, f"unexpected WAV format {fmt}", retryable=False)
        pos += 8 + size + (size & 1)
    return None
