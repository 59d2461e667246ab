"""Whatever a TTS service sends, as PCM16 mono at the rate that was asked for.

Telnyx's docs and its SDK disagree on the TTS formats (linear16 + ``sample_rate`` on the
voices' pages; ``pcm``/``wav``/``mp3`` and no rate in the SDK), and some voices ignore the
request altogether (KokoroTTS always sends MP3 [3P]). So the bytes decide, sniffed on the
first chunk of the stream and of each new file within it:

* ``RAW``: PCM16 at ``raw_rate`` (raw bytes carry no rate: it is the one requested, or the
  documented default when none could be requested);
* ``WAV``: the header says rate, channels and sample format (PCM16, μ-law, A-law);
* ``MP3``: decoded with ``miniaudio`` (a wheel with the C decoder compiled in: no external
  program). A stream can be several MP3 files back to back, each with its own ID3 tag.

Anything at another rate is resampled (:func:`audioop.ratecv`, its state kept across
chunks), stereo is mixed down. A format that cannot be played raises a non-retryable
:class:`~.base.ProviderError` naming it. This runs per TTS chunk (tens per reply), not per
media frame.
"""

from __future__ import annotations

import struct
from array import array
from typing import Any, Literal

from .. import _audioop as audioop
from .base import ProviderError

__all__ = ["IncomingAudio", "sniff_container"]

Kind = Literal["RAW", "WAV", "MP3"]
_WAV_PCM, _WAV_ALAW, _WAV_MULAW = 1, 6, 7


def sniff_container(data: bytes) -> str | None:
    """'MP3', 'WAV' or 'Ogg' when ``data`` starts like one; None for (presumably) raw PCM."""
    if data.startswith(b"ID3"):
        return "MP3"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "WAV"
    if data.startswith(b"OggS"):
        return "Ogg"
    if len(data) >= 4 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync. Raw PCM can start with 0xFF 0xEx too (a small negative
        # sample), so also require layer III, a real bitrate and a real sample-rate index.
        layer = (data[1] >> 1) & 0b11
        bitrate = data[2] >> 4
        rate_index = (data[2] >> 2) & 0b11
        if layer == 0b01 and bitrate not in (0, 0xF) and rate_index != 0b11 and (data[1] >> 3) & 0b11 != 0b01:
            return "MP3"
    return None


def _file_start(data: bytes) -> str | None:
    if data.startswith(b"ID3"):
        return "MP3"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "WAV"
    return None


def _load_mp3_decoder() -> Any:
    try:
        import miniaudio
    except ImportError:
        return None
    return miniaudio


class IncomingAudio:
    """One TTS stream's audio: :meth:`feed` each chunk as it arrives, get PCM16 back."""

    def __init__(self, *, rate: int, raw_rate: int, provider: str, voice: str) -> None:
        self.rate = rate
        self.raw_rate = raw_rate
        self.provider = provider
        self.voice = voice
        self.kind: Kind | None = None
        self.source_rate = raw_rate
        self._wav_format = _WAV_PCM
        self._channels = 1
        self._odd = b""  # a PCM sample split across chunks
        self._resample_state: Any = None
        self._mp3 = bytearray()  # the current MP3 file so far (see _decode_mp3)
        self._mp3_emitted = 0  # its frames (per channel) already returned

    def feed(self, data: bytes) -> bytes:
        # Later chunks start a new file only with an unambiguous marker: an MPEG frame sync
        # can begin any chunk cut from the middle of a file (or of raw PCM).
        container = sniff_container(data) if self.kind is None else _file_start(data)
        if self.kind is None or container is not None:
            self._start(container, data)
        if container == "WAV":
            data = self._wav_header(data)
        if self.kind == "MP3":
            return self._convert(self._decode_mp3(data, new_file=container is not None))
        data = self._odd + data
        width = self._channels * (2 if self._wav_format == _WAV_PCM else 1)
        cut = len(data) - len(data) % width
        data, self._odd = data[:cut], data[cut:]
        if self._wav_format == _WAV_MULAW:
            data = audioop.ulaw2lin(data, 2)
        elif self._wav_format == _WAV_ALAW:
            data = audioop.alaw2lin(data, 2)
        return self._convert(data)

    # -- formats ----------------------------------------------------------------------------

    def _start(self, container: str | None, data: bytes) -> None:
        if container == "Ogg":
            raise self._unplayable("Ogg")
        if container == "MP3" and _load_mp3_decoder() is None:
            raise self._unplayable("MP3", "install the 'miniaudio' package to decode it")
        kind: Kind = "RAW" if container is None else container  # type: ignore[assignment]
        if kind != self.kind:
            self._resample_state = None
        self.kind = kind
        if kind == "RAW":
            self.source_rate, self._channels, self._wav_format = self.raw_rate, 1, _WAV_PCM

    def _wav_header(self, data: bytes) -> bytes:
        """Take rate, channels and format from a WAV header; return the samples after it."""
        pos, fmt = 12, None
        while pos + 8 <= len(data):
            chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
            if chunk == b"fmt " and size >= 16 and pos + 24 <= len(data):
                fmt = struct.unpack_from("<HHIIHH", data, pos + 8)
            elif chunk == b"data":
                if fmt is None:
                    break
                tag, channels, rate, _, _, bits = fmt
                if not ((tag == _WAV_PCM and bits == 16) or (tag in (_WAV_MULAW, _WAV_ALAW) and bits == 8)) \
                        or channels not in (1, 2) or not 4000 <= rate <= 192000:
                    raise self._unplayable(f"WAV (format {tag}, {bits}-bit, {channels} channels)")
                if rate != self.source_rate:
                    self._resample_state = None
                self._wav_format, self._channels, self.source_rate = tag, channels, rate
                self._odd = b""
                return data[pos + 8:]
            pos += 8 + size + (size & 1)
        raise self._unplayable("WAV without a complete header in its first chunk")

    def _decode_mp3(self, data: bytes, *, new_file: bool) -> bytes:
        # Decoding a prefix of an MP3 file gives exactly the prefix of its samples, so the
        # file so far is decoded again on each chunk and only the new samples are returned:
        # the decoder keeps no state between calls, and frames split across chunks or
        # leaning on earlier frames (the bit reservoir) come out right. Each file is a
        # sentence or so, which bounds the repeated work.
        miniaudio = _load_mp3_decoder()
        if new_file:
            self._mp3.clear()
            self._mp3_emitted = 0
        self._mp3 += data
        try:
            decoded = miniaudio.mp3_read_s16(bytes(self._mp3))
        except miniaudio.DecodeError:
            return b""  # not one whole frame yet
        if decoded.sample_rate != self.source_rate:
            self._resample_state = None
        self.source_rate, self._channels = decoded.sample_rate, decoded.nchannels
        samples: array[int] = decoded.samples
        start = self._mp3_emitted * decoded.nchannels
        self._mp3_emitted = len(samples) // decoded.nchannels
        return samples[start:].tobytes()

    def _convert(self, pcm: bytes) -> bytes:
        if not pcm:
            return pcm
        if self._channels == 2:
            pcm = audioop.tomono(pcm[:len(pcm) & ~3], 2, 0.5, 0.5)
        if self.source_rate != self.rate:
            pcm, self._resample_state = audioop.ratecv(pcm, 2, 1, self.source_rate, self.rate,
                                                       self._resample_state)
        return pcm

    def _unplayable(self, what: str, hint: str = "") -> ProviderError:
        return ProviderError(
            self.provider,
            f"voice {self.voice!r} sent {what} audio, which this engine cannot play"
            + (f" ({hint})" if hint else "") + "; choose a voice that streams linear16/PCM or WAV.",
            retryable=False,
        )
