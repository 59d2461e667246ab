"""The VAD quality metrics on tiny synthetic inputs with known answers (no espeak needed)."""

from __future__ import annotations

import array
import math
import random
import sys

import pytest

from bench import vad_quality as vq
from engine import _audioop as audioop
from engine.config import EndpointingConfig

DEFAULT = EndpointingConfig(min_barge_in_ms=200)  # the figures below assume 10 barge-in frames


def timeline(turns: list[tuple[int, int]], n_frames: int) -> tuple[list[bool], list[tuple[float, float]]]:
    """Frame labels and turn times for turns given as [start, end) frame ranges."""
    labels = vq.frame_labels([(s * 160, e * 160) for s, e in turns], n_frames)
    return labels, [(s * 20.0, e * 20.0) for s, e in turns]


TURNS = [(50, 120), (160, 230), (300, 400)]
LABELS, TURNS_MS = timeline(TURNS, 460)


def test_frame_labels_need_half_a_frame() -> None:
    # Samples [80, 400): frame 0 holds 80 of 160 (half: speech), frame 1 all, frame 2 80 (speech).
    assert vq.frame_labels([(80, 400)], 4) == [True, True, True, False]
    # [81, 399): frames 0 and 2 hold 79 samples each: not speech.
    assert vq.frame_labels([(81, 399)], 4) == [False, True, False, False]


def test_perfect_detector_agrees_completely() -> None:
    assert vq.frame_agreement(LABELS, LABELS) == {"accuracy": 1.0, "recall": 1.0, "false_alarm": 0.0}


def test_always_speech_is_all_false_alarm() -> None:
    agree = vq.frame_agreement([True] * len(LABELS), LABELS)
    assert agree["false_alarm"] == 1.0
    assert agree["recall"] == 1.0
    assert agree["accuracy"] == pytest.approx(sum(LABELS) / len(LABELS))


def test_never_speech_hears_nothing() -> None:
    agree = vq.frame_agreement([False] * len(LABELS), LABELS)
    assert agree == {"accuracy": pytest.approx(1 - sum(LABELS) / len(LABELS)), "recall": 0.0, "false_alarm": 0.0}


def test_perfect_detector_ends_every_turn_exactly_at_the_configured_silence() -> None:
    m = vq.turn_end_metrics(LABELS, TURNS_MS, DEFAULT)
    assert m["delays_ms"] == [DEFAULT.end_of_turn_ms] * 3
    assert m["p50_ms"] == m["p95_ms"] == DEFAULT.end_of_turn_ms
    assert (m["missed"], m["split"], m["false"]) == (0, 0, 0)


def test_delay_follows_the_endpointing_config() -> None:
    config = EndpointingConfig(tentative_end_ms=100, end_of_turn_ms=500)
    assert vq.turn_end_metrics(LABELS, TURNS_MS, config)["delays_ms"] == [500.0] * 3


def test_late_detector_adds_its_hangover_to_the_delay() -> None:
    hangover = list(LABELS)
    for _s, e in TURNS:
        hangover[e : e + 5] = [True] * 5  # 100 ms of VAD tail
    m = vq.turn_end_metrics(hangover, TURNS_MS, DEFAULT)
    assert m["delays_ms"] == [DEFAULT.end_of_turn_ms + 100] * 3


def test_always_speech_misses_every_turn() -> None:
    m = vq.turn_end_metrics([True] * len(LABELS), TURNS_MS, DEFAULT)
    assert (m["missed"], m["split"], m["false"]) == (3, 0, 0)
    assert m["delays_ms"] == [] and math.isnan(m["p50_ms"])


def test_a_long_dropout_inside_a_turn_is_a_split() -> None:
    dropout = list(LABELS)
    dropout[70:90] = [False] * 20  # 400 ms hole in the first turn
    m = vq.turn_end_metrics(dropout, TURNS_MS, DEFAULT)
    assert (m["missed"], m["split"], m["false"]) == (0, 1, 0)
    assert m["delays_ms"] == [DEFAULT.end_of_turn_ms] * 3  # the real end is still found


def test_noise_heard_as_a_turn_in_the_silence_is_false() -> None:
    noisy = list(LABELS)
    noisy[135:140] = [True] * 5  # 100 ms burst in the pause after turn 1
    noisy[5:10] = [True] * 5  # and one before the first turn
    m = vq.turn_end_metrics(noisy, TURNS_MS, DEFAULT)
    assert (m["missed"], m["split"], m["false"]) == (0, 0, 2)


def test_merged_turns_count_as_missed() -> None:
    labels, turns_ms = timeline([(10, 60), (70, 120)], 200)  # 200 ms apart: shorter than end of turn
    m = vq.turn_end_metrics(labels, turns_ms, DEFAULT)
    assert (m["missed"], m["split"], m["false"]) == (1, 0, 0)
    assert m["delays_ms"] == [DEFAULT.end_of_turn_ms]


def test_barge_ins_need_min_barge_in_of_voiced_frames() -> None:
    short = ([True] * 9 + [False] * 30) * 4  # 180 ms bursts: rejected
    assert vq.barge_ins(short, DEFAULT) == []
    long = [False] * 10 + [True] * 12 + [False] * 30
    assert vq.barge_ins(long, DEFAULT) == [(10, 19)]
    assert vq.barge_ins(long, EndpointingConfig(min_barge_in_ms=300)) == []


def test_always_speech_barges_in_once_per_turn() -> None:
    assert vq.barge_ins([True] * 500, DEFAULT) == [(0, 9)]


def test_cpu_time_is_per_frame_in_microseconds() -> None:
    class Busy:
        def is_speech(self, pcm: bytes) -> bool:
            return sum(range(2000)) > 0  # some microseconds of work

        def reset(self) -> None:
            pass

    class Idle(Busy):
        def is_speech(self, pcm: bytes) -> bool:
            return False

    frames = [bytes(320)] * 200
    busy = vq.cpu_us_per_frame(Busy, frames, repeats=3)
    idle = vq.cpu_us_per_frame(Idle, frames, repeats=3)
    assert 0 <= idle < busy < 10_000


def _samples(pcm: bytes) -> list[int]:
    a = array.array("h", pcm)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tolist()


def test_trim_keeps_first_to_last_sample_above_minus_40_db_of_peak() -> None:
    body = [0, 50, 99, 101, 10000, -5000, 101, 99, 3, 0]  # peak 10000 -> limit 100
    assert _samples(vq._trim(vq._to_pcm(body))) == [101, 10000, -5000, 101]
    assert vq._trim(bytes(20)) == b""


@pytest.mark.parametrize(
    ("condition", "snr_db"), [("white20-ulaw", 20.0), ("white10-ulaw", 10.0), ("fluct10-ulaw", 10.0)]
)
def test_noise_conditions_hit_their_snr(condition: str, snr_db: float) -> None:
    rng = random.Random(1)
    speech = vq._to_pcm(8000 * math.sin(2 * math.pi * 300 * n / 8000) for n in range(8000))
    noise = vq._gauss_noise(len(speech) // 2, rng)
    power = audioop.rms(speech, 2) ** 2
    mixed = vq._condition(speech, condition, power, noise)
    added = [m - s for m, s in zip(_samples(mixed), _samples(speech), strict=False)]
    measured = 10 * math.log10(power / (sum(a * a for a in added) / len(added)))
    assert measured == pytest.approx(snr_db, abs=0.6)  # μ-law error adds a little


def test_fluctuating_noise_swings_by_about_ten_db() -> None:
    noise = vq._gauss_noise(8000 * 2, random.Random(2))
    levels = [audioop.rms(f, 2) for f in vq._frames(vq._fluctuate(noise))]
    assert 20 * math.log10(max(levels) / min(levels)) == pytest.approx(20.0, abs=3.0)


def test_clean_and_ulaw_conditions() -> None:
    speech = vq._to_pcm(8000 * math.sin(2 * math.pi * 300 * n / 8000) for n in range(800))
    assert vq._condition(speech, "clean", 1.0, b"") == speech
    ulaw = vq._condition(speech, "ulaw", 1.0, b"")
    assert ulaw != speech and audioop.rms(ulaw, 2) == pytest.approx(audioop.rms(speech, 2), rel=0.02)


def test_json_report_has_no_nan() -> None:
    report = {"a": math.nan, "b": [1.0, math.nan], "c": {"d": 2}}
    assert vq._json_safe(report) == {"a": None, "b": [1.0, None], "c": {"d": 2}}


def test_missing_tools_give_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vq.shutil, "which", lambda tool: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng sox"):
        vq.run()
