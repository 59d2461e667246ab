import math
import struct

import pytest

from engine import _audioop as audioop
from engine.codecs import L16, PCMA, PCMU, UnsupportedCodec, codec_for


def tone(n_samples: int, amplitude: int = 8000) -> bytes:
    return struct.pack(f"<{n_samples}h",
                       *(int(amplitude * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(n_samples)))


def test_frame_sizes_are_20_ms():
    assert (PCMU.frame_bytes, PCMU.pcm_frame_bytes) == (160, 320)
    assert (PCMA.frame_bytes, PCMA.pcm_frame_bytes) == (160, 320)
    assert (L16.frame_bytes, L16.pcm_frame_bytes) == (640, 640)


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_round_trip_is_close(codec):
    pcm = tone(160)
    back = codec.decode(codec.encode(pcm))
    assert len(back) == len(pcm)
    # companding error stays small relative to the signal
    assert audioop.rms(audioop.add(back, audioop.mul(pcm, 2, -1), 2), 2) < audioop.rms(pcm, 2) * 0.05


def test_l16_is_big_endian_on_the_wire():
    pcm = struct.pack("<2h", 1, -2)
    assert L16.encode(pcm) == struct.pack(">2h", 1, -2)
    assert L16.decode(struct.pack(">2h", 1, -2)) == pcm


def test_silence_decodes_to_zero():
    assert set(PCMU.decode(PCMU.silence(160))) == {0}
    assert max(abs(s) for s in struct.unpack("<160h", PCMA.decode(PCMA.silence(160)))) <= 8


def test_codec_negotiation():
    assert codec_for("pcmu", 8000) is PCMU
    assert codec_for("L16", 16000) is L16
    with pytest.raises(UnsupportedCodec, match="OPUS"):
        codec_for("OPUS")
    with pytest.raises(UnsupportedCodec, match="16000"):
        codec_for("PCMU", 16000)
