"""VAD behaviour on synthetic signals: silence, a voiced-like harmonic signal, white noise.

The signals are built with ``array`` and ``math`` (numpy is not a dependency).
The harmonic signal is a 120 Hz glottal-like tone (harmonics at 1/k up to the
telephone band, a little vibrato) whose envelope swings at a syllable rate of
3 Hz between 15 % and 100 %; frames where the envelope is at least half its peak
are "loud", and those are what every detector must call speech.
"""

from __future__ import annotations

import array
import base64
import importlib.util
import math
import random
import shutil
import subprocess
import sys

import pytest

from bench.callee import wav_frames
from bench.corpus.model import CORPUS_DIR, load_script
from bench.vad_quality import decide_in_conversation
from engine import _audioop as audioop
from engine import vad as vad_module
from engine.config import EndpointingConfig, VadConfig
from engine.endpointing import Endpointer, EndpointEvent
from engine.vad import EnergyVad, HybridVad, SileroVad, Talker, VadUnavailable, WebRtcVad, make_vad

RATE = 8000
FRAME = 160  # samples per 20 ms


def _envelope(t: float) -> float:
    return 0.15 + 0.85 * math.sin(math.pi * 3.0 * t) ** 2


def harmonic(seconds: float, level_dbfs: float = -20.0, rate: int = RATE) -> list[float]:
    amp = 32768 * 10 ** (level_dbfs / 20)
    ks = [k for k in range(1, 40) if 120 * k < 3400]
    norm = math.sqrt(sum(1 / k**2 for k in ks) / 2)  # unit rms at full envelope
    out, phase = [], 0.0
    for n in range(int(seconds * rate)):
        t = n / rate
        phase += 2 * math.pi * 120 * (1 + 0.05 * math.sin(2 * math.pi * 1.3 * t)) / rate
        out.append(amp * _envelope(t) * sum(math.sin(k * phase) / k for k in ks) / norm)
    return out


def steady(seconds: float, level_dbfs: float) -> list[float]:
    """The harmonic series at a constant level: a held vowel."""
    amp = 32768 * 10 ** (level_dbfs / 20)
    ks = [k for k in range(1, 40) if 120 * k < 3400]
    norm = math.sqrt(sum(1 / k**2 for k in ks) / 2)
    w = 2 * math.pi * 120 / RATE
    return [amp * sum(math.sin(w * k * n) / k for k in ks) / norm for n in range(int(seconds * RATE))]


def loud_frames(n_frames: int, rate: int = RATE) -> list[bool]:
    frame = rate // 50
    return [_envelope((i * frame + frame / 2) / rate) >= 0.5 for i in range(n_frames)]


def white(seconds: float, dbfs: float, seed: int, rate: int = RATE) -> list[float]:
    rng = random.Random(seed)
    sigma = 32768 * 10 ** (dbfs / 20)
    return [rng.gauss(0.0, sigma) for _ in range(int(seconds * rate))]


def pcm(values: list[float]) -> bytes:
    out = array.array("h", (max(-32768, min(32767, round(v))) for v in values))
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def frames(data: bytes, rate: int = RATE) -> list[bytes]:
    size = 2 * rate // 50
    return [data[i : i + size] for i in range(0, len(data) - size + 1, size)]


def decide(vad, data: bytes, rate: int = RATE) -> list[bool]:
    return [vad.is_speech(f) for f in frames(data, rate)]


def power_dbfs(values: list[float]) -> float:
    return 10 * math.log10(sum(v * v for v in values) / len(values) / 32768**2)


HARMONIC = harmonic(3.0)
LOUD = loud_frames(len(HARMONIC) // FRAME)
CHEAP_KINDS = ("energy", "webrtc", "hybrid")


def loud_recall(decisions: list[bool], loud: list[bool] = LOUD) -> float:
    return sum(d for d, lab in zip(decisions, loud, strict=False) if lab) / sum(loud)


# --------------------------------------------------------------------------- factory


@pytest.mark.parametrize(
    ("kind", "cls"), [("energy", EnergyVad), ("webrtc", WebRtcVad), ("hybrid", HybridVad)]
)
def test_make_vad_builds_the_configured_kind(kind: str, cls: type) -> None:
    assert isinstance(make_vad(VadConfig(kind=kind), RATE), cls)


def test_default_kind_is_hybrid() -> None:
    assert isinstance(make_vad(VadConfig(), RATE), HybridVad)


@pytest.mark.parametrize("rate", [11025, 48000])
def test_make_vad_rejects_unsupported_rates(rate: int) -> None:
    with pytest.raises(ValueError, match="8000 or 16000"):
        make_vad(VadConfig(), rate)


# --------------------------------------------------------------------------- silence and speech


@pytest.mark.parametrize("kind", CHEAP_KINDS)
def test_silence_is_not_speech(kind: str) -> None:
    vad = make_vad(VadConfig(kind=kind), RATE)
    assert not any(decide(vad, bytes(2 * RATE * 2)))


@pytest.mark.parametrize("kind", CHEAP_KINDS)
def test_harmonic_signal_is_speech(kind: str) -> None:
    vad = make_vad(VadConfig(kind=kind), RATE)
    decisions = decide(vad, pcm(HARMONIC))
    assert loud_recall(decisions) >= 0.95


@pytest.mark.parametrize("kind", CHEAP_KINDS)
def test_harmonic_signal_is_speech_at_16k(kind: str) -> None:
    rate = 16000
    signal = harmonic(2.0, rate=rate)
    vad = make_vad(VadConfig(kind=kind), rate)
    decisions = decide(vad, pcm(signal), rate)
    assert loud_recall(decisions, loud_frames(len(decisions), rate)) >= 0.95


def test_energy_needs_the_minimum_level() -> None:
    # -60 dBFS speech after digital silence: above the floor, below energy_min_dbfs.
    vad = EnergyVad(min_dbfs=-50.0)
    quiet = decide(vad, bytes(RATE) + pcm(harmonic(1.0, level_dbfs=-60.0)))
    assert not any(quiet)
    vad = EnergyVad(min_dbfs=-70.0)
    assert any(decide(vad, bytes(RATE) + pcm(harmonic(1.0, level_dbfs=-60.0))))


def test_energy_hangover_holds_one_frame() -> None:
    vad = make_vad(VadConfig(kind="energy"), RATE)
    loud = pcm(HARMONIC[:FRAME])
    out = [vad.is_speech(f) for f in (bytes(320),) * 10 + (loud,) + (bytes(320),) * 3]
    assert out[10:] == [True, True, False, False]


def test_sustained_sound_is_not_swallowed_by_the_floor() -> None:
    # A held vowel with no dips for 3 s: the floor may only creep up, not jump onto it.
    vad = EnergyVad()
    decisions = decide(vad, bytes(RATE) + pcm(steady(3.0, -20.0)))
    assert all(decisions[50:])


# --------------------------------------------------------------------------- noise


NOISE_DBFS = power_dbfs(HARMONIC) - 10.0  # the harmonic signal sits 10 dB above it


@pytest.mark.parametrize("kind", ["energy", "hybrid"])
def test_steady_white_noise_is_rejected_once_the_floor_adapts(kind: str) -> None:
    vad = make_vad(VadConfig(kind=kind), RATE)
    decisions = decide(vad, pcm(white(4.0, NOISE_DBFS, seed=1)))
    assert not any(decisions[50:])  # after 1 s


@pytest.mark.parametrize("before_dbfs", [None, -80.0])  # digital silence, or faint line hiss
def test_noise_step_is_learnt_within_the_window_plus_the_rise_time(before_dbfs: float | None) -> None:
    # Noise 19 dB above the floor, which is clamped at min_dbfs - margin (-59 dBFS):
    # about 1 s of window plus 19 / 12.5 s of rise.
    before = pcm(white(1.0, before_dbfs, seed=1)) if before_dbfs else bytes(2 * RATE)
    vad = EnergyVad()
    decisions = decide(vad, before + pcm(white(5.0, -40.0, seed=2)))
    assert any(decisions[50:100])  # it is noticed as a change at first ...
    assert not any(decisions[50 + 150 :])  # ... and learnt within 3 s


@pytest.mark.parametrize("gain_db", [0.0, 10.0])  # at +10 dB the noise alone fools webrtcvad
@pytest.mark.parametrize("kind", ["energy", "hybrid"])
def test_harmonic_signal_in_white_noise_at_10_db_snr(kind: str, gain_db: float) -> None:
    gain = 10 ** (gain_db / 20)
    noise_only = [gain * n for n in white(2.0, NOISE_DBFS, seed=3)]
    mixed = [gain * (s + n) for s, n in zip(HARMONIC, white(3.0, NOISE_DBFS, seed=4), strict=False)]
    vad = make_vad(VadConfig(kind=kind), RATE)
    decisions = decide(vad, pcm(noise_only + mixed))
    assert not any(decisions[50:100])
    assert loud_recall(decisions[100:]) >= 0.8


def test_loud_steady_noise_fools_webrtc_but_not_the_hybrid() -> None:
    # Why the hybrid exists: webrtcvad calls steady white noise at -25 dBFS speech
    # in every mode; the gate has learnt it as the floor and never passes it on.
    noise = pcm(white(3.0, -25.0, seed=5))
    webrtc = decide(make_vad(VadConfig(kind="webrtc", webrtc_mode=3), RATE), noise)
    hybrid = decide(make_vad(VadConfig(kind="hybrid", webrtc_mode=3), RATE), noise)
    assert sum(webrtc[50:]) >= 0.9 * len(webrtc[50:])
    assert not any(hybrid[50:])


def test_hybrid_only_consults_webrtc_on_frames_the_gate_passes() -> None:
    calls = []

    class Judge:
        def is_speech(self, frame: bytes) -> bool:
            calls.append(frame)
            return True

        def reset(self) -> None:
            pass

    vad = HybridVad(EnergyVad(), Judge())
    assert not any(decide(vad, pcm(white(2.0, -40.0, seed=6))))
    assert calls == []  # steady noise never gets past the gate
    decisions = decide(vad, pcm([s + n for s, n in zip(HARMONIC, white(3.0, -40.0, seed=7), strict=False)]))
    assert len(calls) == sum(decisions) > 0


def _mix(*parts: list[float], noise: list[float]) -> bytes:
    signal = [v for part in parts for v in part]
    return pcm([a + b for a, b in zip(signal, noise, strict=False)])


def test_hybrid_hysteresis_keeps_quiet_speech_right_after_loud_speech() -> None:
    # A vowel 5 dB above -40 dBFS noise: under the 9 dB bar to start speech, over
    # the 2 dB bar that holds for 500 ms after a frame that cleared 9 dB.
    noise = white(3.0, -40.0, seed=11)
    quiet = steady(1.0, -35.0)
    after_loud = decide(make_vad(VadConfig(), RATE), _mix([0.0] * RATE, steady(1.0, -20.0), quiet, noise=noise))
    alone = decide(make_vad(VadConfig(), RATE), _mix([0.0] * 2 * RATE, quiet, noise=noise))
    assert sum(after_loud[100:125]) >= 15  # within the hold
    assert not any(after_loud[126:])  # the hold ran out and quiet frames do not renew it
    assert not any(alone)


def test_hybrid_hold_still_respects_the_minimum_level() -> None:
    # -55 dBFS is 4 dB over the floor after digital silence, but under energy_min_dbfs.
    decisions = decide(make_vad(VadConfig(), RATE), bytes(2 * RATE) + pcm(steady(1.0, -20.0) + steady(0.4, -55.0)))
    assert all(decisions[55:100])
    assert not any(decisions[100:])


def test_hybrid_lets_go_in_loud_noise_that_fools_webrtc() -> None:
    # At -25 dBFS webrtcvad calls every noise frame speech and half of them are
    # 2 dB over the floor: the hold must still end within hold_frames.
    for seed in range(4):
        noise = white(4.0, -25.0, seed=seed)
        signal = _mix([0.0] * RATE, harmonic(1.0, -15.0), [0.0] * 2 * RATE, noise=noise)
        decisions = decide(make_vad(VadConfig(), RATE), signal)
        assert sum(decisions[50:100]) > 30
        assert not any(decisions[100 + 25 :])


# --------------------------------------------------------------------------- background bar

BABBLE = CORPUS_DIR / "noise-babble-10db"


def corpus_pcm(path) -> bytes:
    """A corpus WAV (8 kHz μ-law) as PCM16, as the engine decodes it."""
    return audioop.ulaw2lin(b"".join(base64.b64decode(p) for p in wav_frames(path)), 2)


def turn_ends_after(vad, script_step: str, *, learn_under_agent: bool) -> tuple[int, list[int]]:
    """3 s of the babble alone (under the agent's voice, or not), one caller utterance, then
    1.5 s of babble: the utterance's last voiced frame and the frames TURN_END came on."""
    noise = frames(corpus_pcm(BABBLE / "noise.wav"))
    step = next(s for s in load_script(BABBLE).steps if s.id == script_step)
    utterance = frames(corpus_pcm(BABBLE / step.audio))
    endpointer = Endpointer(EndpointingConfig())
    ends = []
    under_agent = Talker.AGENT if learn_under_agent else Talker.NOBODY
    feed = [(f, under_agent) for f in noise[:150]] + [(f, None) for f in utterance + noise[150:225]]
    for i, (frame, talker) in enumerate(feed):
        if talker is None:  # the caller's turn, as the session tells it from the endpointer
            talker = Talker.CALLER if endpointer.in_speech else Talker.NOBODY
        if endpointer.process(vad.is_speech(frame, talker), False) is EndpointEvent.TURN_END:
            ends.append(i)
    return 150 + int(step.speech_end_s * 50), ends


def test_hybrid_ends_turns_in_babble_once_it_has_heard_the_background_under_the_agent() -> None:
    last_voiced, ends = turn_ends_after(make_vad(VadConfig(), RATE), "u2", learn_under_agent=True)
    assert any(last_voiced <= e <= last_voiced + 20 for e in ends)  # within 400 ms


def test_without_the_background_babble_keeps_the_turn_open() -> None:
    # Why the bar exists: babble frames clear the floor and fool webrtcvad, so the turn
    # would never end by itself.
    last_voiced, ends = turn_ends_after(make_vad(VadConfig(), RATE), "u2", learn_under_agent=False)
    assert not any(e >= last_voiced for e in ends)


def test_background_is_learnt_under_the_agent_then_from_silence_between_turns() -> None:
    vad = HybridVad(EnergyVad(), WebRtcVad())
    quiet = frames(pcm(white(2.0, -50.0, seed=3)))
    for f in quiet:
        vad.is_speech(f, Talker.NOBODY)
    assert vad.background_db == -math.inf  # a caller may talk from the first frame on
    noise = frames(pcm(white(3.0, -30.0, seed=4)))
    for f in noise:
        vad.is_speech(f, Talker.AGENT)
    level = 20 * math.log10(audioop.rms(pcm(white(3.0, -30.0, seed=4)), 2) / 32768)
    assert abs(vad.background_db - level) < 1.5  # the median climbed from the floor
    assert vad.spread_db < 1.0  # steady noise: the bars stay under the gate's
    spread = vad.spread_db
    for f in quiet[:25]:  # the noise stopped in the caller's turn: the median follows, ...
        vad.is_speech(f, Talker.CALLER)
    assert vad.background_db < level - 4.0
    assert vad.spread_db == spread  # ... not the spread (quiet speech would inflate it)
    for f in quiet:  # and between turns both do
        assert not vad.is_speech(f, Talker.NOBODY)
    assert vad.background_db < -45.0 and vad.spread_db != spread


def test_spread_of_fluctuating_noise_is_learnt() -> None:
    vad = HybridVad(EnergyVad(), WebRtcVad())
    for f in frames(corpus_pcm(BABBLE / "noise.wav")):
        vad.is_speech(f, Talker.AGENT)
    assert 1.5 < vad.spread_db < 4.0  # the babble's frame levels: median absolute deviation 2.6 dB


@pytest.mark.parametrize("noise_dbfs", [-60.0, -40.0])
def test_background_bar_changes_nothing_on_a_steady_line(noise_dbfs: float) -> None:
    # Speech, the agent talks, speech again, all over steady noise: the same decisions as
    # a detector that never learnt a background.
    n = len(HARMONIC) // FRAME
    talkers = [Talker.NOBODY] * 50 + [Talker.CALLER] * n + [Talker.AGENT] * 100 + [Talker.CALLER] * n
    speech = [0.0] * RATE + HARMONIC + [0.0] * 2 * RATE + HARMONIC
    signal = frames(pcm([a + b for a, b in zip(speech, white(len(speech) / RATE, noise_dbfs, seed=2), strict=False)]))
    learning, plain = make_vad(VadConfig(), RATE), make_vad(VadConfig(), RATE)
    assert ([learning.is_speech(f, t) for f, t in zip(signal, talkers, strict=False)]
            == [plain.is_speech(f) for f in signal])
    assert learning.background_db > -math.inf and plain.background_db == -math.inf


def test_caller_talking_over_the_agent_from_its_first_frame_is_heard() -> None:
    # A silent line, then the agent starts and the caller with it. Their frames count as
    # background until BARGE_IN_PENDING holds the reply, as in the session.
    vad = make_vad(VadConfig(), RATE)
    decide(vad, bytes(2 * RATE))
    signal = frames(pcm(HARMONIC))
    decisions = decide_in_conversation(vad, signal, [True] * len(signal))
    assert loud_recall(decisions) > 0.9


@pytest.mark.parametrize("kind", CHEAP_KINDS)
def test_reset_forgets_the_history(kind: str) -> None:
    vad = make_vad(VadConfig(kind=kind), RATE)
    signal = pcm(white(1.0, NOISE_DBFS, seed=7)) + pcm(HARMONIC)
    first = decide(vad, signal)
    vad.reset()
    assert decide(vad, signal) == first
    fresh = make_vad(VadConfig(kind=kind), RATE)
    assert decide(fresh, signal) == first


def test_energy_floor_tracks_the_noise_level() -> None:
    vad = EnergyVad()
    decide(vad, pcm(white(2.0, -40.0, seed=8)))
    # The floor is the window minimum: a little under the mean level of the noise.
    assert -43.0 < vad.floor_db < -40.0


# --------------------------------------------------------------------------- silero


@pytest.fixture
def silero_installed() -> None:
    """Skip unless the [silero] extra is installed (onnxruntime, numpy and the model file)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("numpy")
    try:
        vad_module._silero_model_path()
    except VadUnavailable as exc:
        pytest.skip(str(exc))


class _FakeSession:
    """Stands in for the shared onnxruntime session: records the inputs, counts state."""

    def __init__(self) -> None:
        import numpy as np

        self.np = np
        self.inputs: list = []

    def run(self, _outputs, feeds):
        self.inputs.append(feeds["input"].copy())
        state = feeds["state"] + 1.0  # the stream's state must come back on the next call
        return [self.np.array([[0.9 if len(self.inputs) % 2 else 0.1]], dtype=self.np.float32), state]


@pytest.mark.usefixtures("silero_installed")
def test_silero_buffers_frames_into_windows_with_context() -> None:
    vad = SileroVad(sample_rate=RATE)
    fake = _FakeSession()
    vad._session = fake
    signal = [float(n % 1000) for n in range(8 * FRAME)]
    for f in frames(pcm(signal)):
        vad.is_speech(f)
    # 8 frames of 160 = 1280 samples = 5 windows of 256, each with 32 samples of context.
    assert len(fake.inputs) == 5
    for k, x in enumerate(fake.inputs):
        assert x.shape == (1, 32 + 256)
        expected = [v / 32768 for v in signal[k * 256 : (k + 1) * 256]]
        assert x[0, 32:].tolist() == pytest.approx(expected)
        context = x[0, :32].tolist()
        assert context == (pytest.approx(fake.inputs[k - 1][0, -32:].tolist()) if k else [0.0] * 32)
    assert float(vad._state[0, 0, 0]) == 5.0  # the state went round five times


@pytest.mark.usefixtures("silero_installed")
def test_silero_reports_the_latest_window_with_hysteresis() -> None:
    vad = SileroVad(threshold=0.5, sample_rate=RATE)
    fake = _FakeSession()
    vad._session = fake
    probs = iter([0.9, 0.4, 0.3, 0.6])
    fake.run = lambda _o, feeds: [fake.np.array([[next(probs)]], dtype=fake.np.float32), feeds["state"]]
    out = []
    for f in frames(bytes(2 * 7 * FRAME)):
        out.append(vad.is_speech(f))
    # Windows complete on frames 1, 3, 4 and 6 (160-sample frames, 256-sample windows).
    # 0.9 starts speech; 0.4 holds it (above 0.5 - 0.15); 0.3 ends it; 0.6 starts it again.
    assert out == [False, True, True, True, False, False, True]


@pytest.mark.usefixtures("silero_installed")
def test_silero_streams_share_one_session_but_not_state() -> None:
    a = make_vad(VadConfig(kind="silero"), RATE)
    b = make_vad(VadConfig(kind="silero"), RATE)
    assert isinstance(a, SileroVad) and isinstance(b, SileroVad)
    assert a._session is b._session
    signal = frames(pcm(white(1.0, NOISE_DBFS, seed=9)) + pcm(HARMONIC))
    alone = []
    for f in signal:
        a.is_speech(f)
        alone.append(a.prob)
    a.reset()
    interleaved = []
    for f in signal:
        b.is_speech(f[::-1])  # another call's audio in between
        a.is_speech(f)
        interleaved.append(a.prob)
    assert interleaved == alone
    assert len(set(alone)) > 10  # the probabilities did move


@pytest.mark.usefixtures("silero_installed")
def test_silero_silence_is_not_speech() -> None:
    vad = make_vad(VadConfig(kind="silero"), RATE)
    assert not any(decide(vad, bytes(2 * RATE * 2)))


@pytest.mark.usefixtures("silero_installed")
@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng and sox")
@pytest.mark.parametrize("rate", [8000, 16000])
def test_silero_hears_synthetic_speech(rate: int, tmp_path) -> None:
    wav, raw = tmp_path / "s.wav", tmp_path / "s.raw"
    text = "I would like to check my order, please."
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
    subprocess.run(
        ["sox", "-D", str(wav), "-t", "raw", "-r", str(rate), "-e", "signed", "-b", "16", "-c", "1", "-L", str(raw)],
        check=True,
    )
    vad = make_vad(VadConfig(kind="silero"), rate)
    decisions = decide(vad, bytes(2 * rate) + raw.read_bytes(), rate)
    assert not any(decisions[:50])
    assert sum(decisions[50:]) / len(decisions[50:]) > 0.5


def test_silero_missing_model_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(VadUnavailable, match=r"\[silero\]"):
        vad_module._silero_model_path()


def test_silero_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vad_module, "_session", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    with pytest.raises(VadUnavailable, match=r"\[silero\]"):
        make_vad(VadConfig(kind="silero"), RATE)


def test_energy_rms_matches_audioop() -> None:
    # The gate's level is audioop.rms in dBFS: a full-scale-ish square wave reads about 0 dB.
    vad = EnergyVad()
    square = pcm([32767.0 if (n // 20) % 2 else -32767.0 for n in range(FRAME)])
    vad.is_speech(square)
    assert vad.last_db == pytest.approx(20 * math.log10(audioop.rms(square, 2) / 32768), abs=1e-9)
    assert vad.last_db > -0.1
