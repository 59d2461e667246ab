"""The caller's final pitch contour at a pause: did the voice fall, as at the end of a statement,
or stay up, as before a comma? (issue 13)

Words cannot tell "Thanks, [320 ms] bye." from "Thanks." once the recogniser leaves the
punctuation out; the voice can. A finished statement ends on a fall in pitch; a comma, a list
item or "and..." keeps it level or rising (a continuation rise). :func:`final_contour` reads
the last half second of the caller's audio before the silence: F0 every 10 ms by YIN
(de Cheveigné & Kawahara 2002: cumulative mean normalised difference, 60-400 Hz), then the
slope, in semitones a second, of the last voiced frames (a Theil-Sen median of pairwise
slopes, so one octave error does not swing it).

On the corpus and the field callers (8 kHz μ-law, ``python -m bench.corpus.contour``), 60 of 65
pauses at a comma or "..." inside a line are not judged falling, and 58 of 83 statement ends
are (most questions rise). The turn policy uses it only where the words are unsure or
unpunctuated (:func:`.conversation.turn_completion.judge_turn`).

Sans-IO and pure: run once per pause, never per frame (~0.3 ms of CPU).
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = ["CONTOUR_WINDOW_S", "NO_AUDIO", "Contour", "PauseAudio", "contour_slope", "final_contour"]


class Contour(enum.Enum):
    FALL = "fall"
    """A final fall: the statement is over."""
    LEVEL = "level"
    RISE = "rise"
    """A continuation rise (or a question's)."""
    UNKNOWN = "unknown"
    """Too little voiced audio to tell, or not measured."""


CONTOUR_WINDOW_S = 0.5
"""Audio read before the pause: enough for the last voiced frames of a word or two."""
_RATE = 8000
_HOP = 80  # 10 ms
_WIN = 240  # 30 ms: two periods of the lowest F0
_TAU_MIN = _RATE // 400
_TAU_MAX = _RATE // 60
_N = _WIN + _TAU_MAX
_NFFT = 1 << (_N - 1).bit_length()
"""Enough for lags up to _TAU_MAX without the circular correlation wrapping (j + tau < _N)."""
_DIP = 0.2
"""YIN's absolute threshold: the first lag whose normalised difference dips under it is the period."""
_APERIODIC = 0.3
"""A frame whose best dip stays above this is unvoiced (noise, a consonant)."""
_QUIET_DB = 30.0
"""A frame this far under the window's loudest is not the caller's voice."""
_FLOOR_DB = 30.0
"""... and one under this (mean square, in dB over one 16-bit step: -60 dBFS) is silence, where
the difference function is zero at every lag and would pass for a perfect period."""
_MIN_VOICED = 4
_LAST_VOICED = 8
"""Frames the slope is taken over: the last 80 ms of voice, the final syllable's pitch movement."""
FALL_ST_PER_S = -8.0
RISE_ST_PER_S = 8.0
"""Thresholds on the slope, from the corpus study (``bench.corpus.contour``): a comma's pitch
falls faster than -8 st/s in 5 of 65 pauses, a statement's end in 58 of 83."""


def contour_slope(pcm: bytes, sample_rate: int = _RATE) -> float | None:
    """The pitch slope (semitones a second) over the last voiced frames of ``pcm`` (16-bit
    little-endian mono, 8 or 16 kHz), or None when fewer than four frames are voiced."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if sample_rate == 2 * _RATE:
        x = x[: len(x) // 2 * 2].reshape(-1, 2).mean(axis=1)  # to 8 kHz: F0 is far under 4 kHz
    elif sample_rate != _RATE:
        raise ValueError(f"unsupported sample rate {sample_rate}")
    x = x[-int(CONTOUR_WINDOW_S * _RATE):]
    count = (len(x) - _N) // _HOP + 1
    if count < _MIN_VOICED:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(x, _N)[::_HOP][:count]
    # Difference function d(tau) = e(0) + e(tau) - 2 r(tau), the correlation by FFT.
    spec_a = np.fft.rfft(frames[:, :_WIN], _NFFT)
    spec_b = np.fft.rfft(frames, _NFFT)
    r = np.fft.irfft(np.conj(spec_a) * spec_b, _NFFT)[:, : _TAU_MAX + 1]
    energy = np.concatenate([np.zeros((count, 1)), np.cumsum(frames * frames, axis=1)], axis=1)
    taus = np.arange(_TAU_MAX + 1)
    e0 = energy[:, _WIN]
    d = e0[:, None] + (energy[:, taus + _WIN] - energy[:, taus]) - 2 * r
    d[:, 0] = 0.0
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(np.cumsum(d[:, 1:], axis=1), 1e-9)
    band = cmnd[:, _TAU_MIN:]
    dips = band < _DIP
    # The first dip under the threshold, walked down to its local minimum; else the lowest point.
    first = np.where(dips.any(axis=1), dips.argmax(axis=1), band.argmin(axis=1))
    rising = np.diff(band, axis=1, append=np.inf) >= 0
    cols = np.arange(band.shape[1])
    lag = np.where(rising & (cols >= first[:, None]), cols, band.shape[1]).min(axis=1)
    rows = np.arange(count)
    aperiodicity = band[rows, lag]
    tau = (lag + _TAU_MIN).astype(np.float64)
    # Parabolic interpolation of the dip, for pitch finer than one lag step.
    inner = tau < _TAU_MAX
    t = np.clip(lag + _TAU_MIN, 1, _TAU_MAX - 1)
    left, mid, right = cmnd[rows, t - 1], cmnd[rows, t], cmnd[rows, t + 1]
    den = left - 2 * mid + right
    shift = np.where(inner & (den > 0), 0.5 * (left - right) / np.where(den > 0, den, 1.0), 0.0)
    f0 = _RATE / np.maximum(tau + shift, 1.0)
    level = 10 * np.log10(e0 / _WIN + 1e-9)
    voiced = np.flatnonzero((aperiodicity < _APERIODIC) & (level > max(level.max() - _QUIET_DB, _FLOOR_DB)))
    if len(voiced) < _MIN_VOICED:
        return None
    last = voiced[-_LAST_VOICED:]
    semitones = 12 * np.log2(f0[last] / 100.0)
    i, j = np.triu_indices(len(last), 1)
    slopes = (semitones[j] - semitones[i]) / ((last[j] - last[i]) * (_HOP / _RATE))
    return float(np.median(slopes))


def final_contour(pcm: bytes, sample_rate: int = _RATE) -> Contour:
    """Whether the voice fell, stayed level or rose at the end of ``pcm`` (see the module doc)."""
    slope = contour_slope(pcm, sample_rate)
    if slope is None:
        return Contour.UNKNOWN
    if slope < FALL_ST_PER_S:
        return Contour.FALL
    if slope > RISE_ST_PER_S:
        return Contour.RISE
    return Contour.LEVEL


class PauseAudio:
    """The caller's audio at one pause, its contour read at most once and only when asked: most
    pauses are gaps inside a word or a line that end before any judgement needs the voice."""

    __slots__ = ("_pcm", "_sample_rate", "_contour")

    def __init__(self, pcm: bytes = b"", sample_rate: int = _RATE, contour: Contour | None = None) -> None:
        self._pcm = pcm
        self._sample_rate = sample_rate
        self._contour = contour if contour is not None else (None if pcm else Contour.UNKNOWN)

    def contour(self) -> Contour:
        if self._contour is None:
            self._contour = final_contour(self._pcm, self._sample_rate)
            self._pcm = b""
        return self._contour

    def __repr__(self) -> str:
        return f"PauseAudio({self._contour.value if self._contour else f'{len(self._pcm)} bytes'})"


NO_AUDIO = PauseAudio()
"""No audio kept (or the contour is not wanted): the contour is unknown."""
