"""Telnyx media codecs <-> 16-bit little-endian PCM, 20 ms at a time.

Payloads on the media stream are bare RTP payloads (no header). PCMU and PCMA are
8 kHz, one byte a sample; L16 is 16 kHz, two bytes a sample in network (big-endian)
order. All three are sample-wise, so encoding a long chunk and cutting it into
frames afterwards gives the same bytes as encoding frame by frame, only cheaper.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import _audioop as audioop
from .config import FRAME_MS


class UnsupportedCodec(ValueError):
    """The stream negotiated a format this engine does not speak."""


def _identity(data: bytes) -> bytes:
    return data


def _swap16(data: bytes) -> bytes:
    return audioop.byteswap(data, 2)


# L16 on the wire is big-endian; only swap where the host is little-endian.
_l16_convert = _swap16 if sys.byteorder == "little" else _identity


@dataclass(frozen=True, slots=True)
class Codec:
    encoding: str
    sample_rate: int
    bytes_per_sample: int
    decode: Callable[[bytes], bytes]
    """Wire bytes -> PCM16 little-endian at ``sample_rate``."""
    encode: Callable[[bytes], bytes]
    """PCM16 little-endian at ``sample_rate`` -> wire bytes."""
    silence_byte: int

    @property
    def frame_bytes(self) -> int:
        """Size of one 20 ms payload on the wire."""
        return self.sample_rate * FRAME_MS // 1000 * self.bytes_per_sample

    @property
    def pcm_frame_bytes(self) -> int:
        """Size of one 20 ms frame of PCM16."""
        return self.sample_rate * FRAME_MS // 1000 * 2

    def silence(self, n_bytes: int) -> bytes:
        return bytes((self.silence_byte,)) * n_bytes


PCMU = Codec(
    "PCMU", 8000, 1,
    decode=lambda b: audioop.ulaw2lin(b, 2),
    encode=lambda p: audioop.lin2ulaw(p, 2),
    silence_byte=0xFF,
)
PCMA = Codec(
    "PCMA", 8000, 1,
    decode=lambda b: audioop.alaw2lin(b, 2),
    encode=lambda p: audioop.lin2alaw(p, 2),
    silence_byte=0xD5,
)
L16 = Codec("L16", 16000, 2, decode=_l16_convert, encode=_l16_convert, silence_byte=0x00)

_CODECS = {c.encoding: c for c in (PCMU, PCMA, L16)}


def codec_for(encoding: str, sample_rate: int | None = None) -> Codec:
    """The codec for a ``start.media_format``; raises :class:`UnsupportedCodec` otherwise."""
    codec = _CODECS.get(encoding.upper())
    if codec is None:
        raise UnsupportedCodec(f"unsupported media encoding {encoding!r}; supported: {', '.join(_CODECS)}")
    if sample_rate is not None and sample_rate != codec.sample_rate:
        raise UnsupportedCodec(
            f"{codec.encoding} at {sample_rate} Hz is not supported; expected {codec.sample_rate} Hz"
        )
    return codec
