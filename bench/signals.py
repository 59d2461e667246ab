"""Deterministic synthetic audio for benchmarks and tests (no numpy needed).

Generation is pure Python and slow, so results are cached: the bytes are immutable.
"""

from __future__ import annotations

import functools
import math
import random
import struct


@functools.lru_cache(maxsize=64)
def voiced(seconds: float, rate: int = 8000, f0: float = 120.0, level: float = 0.25, seed: int = 0) -> bytes:
    """A speech-like PCM16 signal: a harmonic series on a wandering pitch, amplitude-modulated
    at a syllable rate (~4 Hz), so energy and spectral VADs both see voice."""
    rng = random.Random(seed)
    n = int(seconds * rate)
    out = [0] * n
    phase = 0.0
    for i in range(n):
        t = i / rate
        pitch = f0 * (1.0 + 0.08 * math.sin(2 * math.pi * 0.7 * t))
        phase += 2 * math.pi * pitch / rate
        s = sum(math.sin(k * phase) / k for k in range(1, 12) if k * pitch < rate / 2)
        envelope = 0.55 + 0.45 * math.sin(2 * math.pi * 4.0 * t)
        out[i] = int(max(-1.0, min(1.0, level * envelope * s + rng.gauss(0, 0.002))) * 32767)
    return struct.pack(f"<{n}h", *out)


@functools.lru_cache(maxsize=16)
def white_noise(seconds: float, rate: int = 8000, level: float = 0.01, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(max(-32768, min(32767, int(rng.gauss(0, level) * 32767))) for _ in range(n)))


def silence(seconds: float, rate: int = 8000) -> bytes:
    return bytes(int(seconds * rate) * 2)
