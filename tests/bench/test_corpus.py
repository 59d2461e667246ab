"""The committed call corpus (bench/corpus/calls) is complete, well-formed and labelled right.

Reads the WAVs with a small RIFF reader and ``audioop`` (no espeak-ng or sox needed). Only the
last tests regenerate calls, and they skip when espeak-ng or sox is missing. Set
``BENCH_CORPUS_DIR`` to check a corpus generated elsewhere (``--out DIR``).
"""

from __future__ import annotations

import array
import math
import os
import re
import shutil
import struct
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from bench.corpus.model import CATEGORIES, CORPUS_DIR, CallScript, Step, load_corpus
from engine import _audioop as audioop

RATE = 8000
TOLERANCE_S = 0.040  # measured voiced span against the labels
CLEAN_LEAD_S = 0.060  # most audio before/after the voiced span in a clean WAV
NOISE_LEAD_S = (0.20, 0.40)  # noise alone before/after the voiced span in a noisy WAV
MIN_COUNTS = {
    "plain": 5, "pauses": 3, "barge_in_early": 3, "barge_in_late": 3, "backchannel": 3,
    "noise": 4, "dtmf": 2, "silent": 1, "voicemail": 1,
}
BACKCHANNELS = {"uh-huh", "okay", "yeah", "mm-hmm"}
NOISE_KINDS = ("babble", "street", "hum")

ROOT = Path(os.environ.get("BENCH_CORPUS_DIR", CORPUS_DIR))
CALLS = load_corpus(ROOT)
BY_NAME = {c.name: c for c in CALLS}
NAMES = sorted(BY_NAME)


def calls_in(*categories: str) -> list[str]:
    return [c.name for c in CALLS if c.category in categories]


# --------------------------------------------------------------------------- reading audio


@dataclass(frozen=True)
class Wav:
    format_tag: int
    channels: int
    rate: int
    byte_rate: int
    block_align: int
    bits: int
    data: bytes  # the raw data chunk (μ-law bytes)

    @property
    def duration_s(self) -> float:
        return len(self.data) / self.rate


def read_wav(path: Path) -> Wav:
    """A minimal RIFF/WAVE reader: walks the chunks, needs ``fmt `` before ``data``."""
    raw = path.read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    if struct.unpack("<I", raw[4:8])[0] != len(raw) - 8:
        raise ValueError(f"{path}: RIFF size does not match the file size")
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(raw):
        chunk_id, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = raw[pos + 8 : pos + 8 + size]
        if len(body) != size:
            raise ValueError(f"{path}: chunk {chunk_id!r} runs past the end of the file")
        if chunk_id == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError(f"{path}: data chunk before fmt chunk")
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError(f"{path}: missing fmt or data chunk")
    return Wav(*fmt, data=data)


@cache
def wav(path: Path) -> Wav:
    return read_wav(path)


@cache
def pcm(path: Path) -> bytes:
    """Decoded 16-bit linear samples."""
    return audioop.ulaw2lin(wav(path).data, 2)


def samples(data: bytes) -> array.array:
    """16-bit samples in native byte order, as ``audioop`` returns them."""
    return array.array("h", data)


def voiced_span(data: bytes) -> tuple[float, float]:
    """First and last sample above -40 dB of the peak, in seconds (end exclusive)."""
    x = samples(data)
    limit = max(map(abs, x)) * 0.01
    loud = [i for i, s in enumerate(x) if abs(s) > limit]
    return loud[0] / RATE, (loud[-1] + 1) / RATE


def silences(data: bytes, start_s: float, end_s: float, min_s: float) -> list[tuple[float, float]]:
    """Runs of at least ``min_s`` inside the span with every sample at or under -40 dB of the peak."""
    x = samples(data)
    limit = max(map(abs, x)) * 0.01
    runs, run = [], None
    for i in range(round(start_s * RATE), round(end_s * RATE)):
        if abs(x[i]) <= limit:
            run = i if run is None else run
        else:
            if run is not None and i - run >= min_s * RATE:
                runs.append((run / RATE, i / RATE))
            run = None
    if run is not None and round(end_s * RATE) - run >= min_s * RATE:
        runs.append((run / RATE, round(end_s * RATE) / RATE))
    return runs


def power(data: bytes) -> float:
    return float(audioop.rms(data, 2)) ** 2


def cut(data: bytes, start_s: float, end_s: float) -> bytes:
    return data[2 * round(start_s * RATE) : 2 * round(end_s * RATE)]


def active(data: bytes, step: Step) -> bytes:
    """The voiced span without its pauses."""
    edges = [step.speech_start_s, *(t for p in step.pauses for t in p), step.speech_end_s]
    return b"".join(cut(data, a, b) for a, b in zip(edges[::2], edges[1::2], strict=False))


def tone_share(data: bytes, hz: float) -> float:
    """Fraction of the power at ``hz`` (a single-bin DFT over the whole window)."""
    x = samples(data)
    n = len(x)
    w = 2 * math.pi * hz / RATE
    re_ = sum(s * math.cos(w * k) for k, s in enumerate(x)) * 2 / n
    im_ = sum(s * math.sin(w * k) for k, s in enumerate(x)) * 2 / n
    return (re_ * re_ + im_ * im_) / 2 / (sum(s * s for s in x) / n)


def is_noisy(call: CallScript) -> bool:
    return (call.directory / "noise.wav").exists()


@cache
def speech_alone(call_name: str) -> dict[str, bytes]:
    """A noisy call's utterances with their noise (noise.wav looped, continuing from the previous
    utterance, u1 at sample 0) subtracted: the caller's speech alone, plus μ-law rounding."""
    call = BY_NAME[call_name]
    noise = pcm(call.directory / "noise.wav")
    n_loop = len(noise) // 2
    out, pos = {}, 0
    for step in call.utterances():
        mixed = pcm(call.audio_path(step))
        n = len(mixed) // 2
        first = pos % n_loop
        under = (noise * (2 + n // n_loop))[2 * first : 2 * (first + n)]
        out[step.id] = audioop.add(mixed, audioop.mul(under, 2, -1.0), 2)
        pos += n
    return out


def speech(call: CallScript, step: Step) -> bytes:
    return speech_alone(call.name)[step.id] if is_noisy(call) else pcm(call.audio_path(step))


def snr_db(call: CallScript) -> float:
    match = re.search(r"at (\d+(?:\.\d+)?) dB SNR", call.description)
    assert match, f"{call.name}: the description does not give the SNR"
    return float(match.group(1))


# --------------------------------------------------------------------------- the corpus as a whole


def test_corpus_has_at_least_24_uniquely_named_calls() -> None:
    assert len(CALLS) >= 24
    assert len(NAMES) == len(CALLS)
    for call in CALLS:
        assert call.name == call.directory.name
        assert call.directory.parent == ROOT


def test_every_category_has_its_minimum_number_of_calls() -> None:
    assert set(MIN_COUNTS) == set(CATEGORIES)
    counts = Counter(c.category for c in CALLS)
    short = {cat: (counts[cat], need) for cat, need in MIN_COUNTS.items() if counts[cat] < need}
    assert not short, f"category: (have, need) {short}"


def test_corpus_is_small() -> None:
    size = sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file())
    assert size < 5_000_000


def test_callers_use_several_voices_and_speeds() -> None:
    found = [re.search(r"espeak-ng (\S+) at (\d+) wpm", c.description) for c in CALLS if c.utterances()]
    assert all(found), "every speaking call names its voice and speed"
    voices = {m.group(1) for m in found if m}
    speeds = [int(m.group(2)) for m in found if m]
    assert len(voices) >= 5
    assert all(150 <= s <= 190 for s in speeds)
    assert max(speeds) - min(speeds) >= 30


def test_openings_mix_callee_first_and_agent_first() -> None:
    first = [c.steps[0].after for c in CALLS if c.answer == "human" and c.utterances()]
    assert "call_start" in first and "agent_done" in first
    assert set(first) <= {"call_start", "agent_done"}


def test_barge_ins_and_backchannels_only_ever_anchor_on_agent_start() -> None:
    for call in CALLS:
        for step in call.steps:
            if step.expect in ("barge_in", "no_interrupt"):
                assert step.after == "agent_start", f"{call.name} {step.id}"
            if step.after == "agent_start":
                assert step.expect in ("barge_in", "no_interrupt"), f"{call.name} {step.id}"


# --------------------------------------------------------------------------- every call


@pytest.mark.parametrize("name", NAMES)
def test_every_wav_is_8khz_mono_ulaw_and_every_file_is_used(name: str) -> None:
    call = BY_NAME[name]
    referenced = {s.audio for s in call.utterances()}
    assert len(referenced) == len(call.utterances()), "two utterances share a WAV"
    present = {p.name for p in call.directory.glob("*.wav")}
    assert present == referenced | ({"noise.wav"} if call.category == "noise" else set())
    for file in sorted(present):
        w = wav(call.directory / file)
        assert (w.format_tag, w.channels, w.rate, w.byte_rate, w.block_align, w.bits) == (7, 1, 8000, 8000, 1, 8)
        assert len(w.data) > RATE // 10
        assert audioop.max(pcm(call.directory / file), 2) < 32000, "clipped"


@pytest.mark.parametrize("name", NAMES)
def test_steps_are_well_formed(name: str) -> None:
    call = BY_NAME[name]
    ids = [s.id for s in call.utterances()]
    assert ids == [f"u{i + 1}" for i in range(len(ids))]
    assert call.steps[-1].kind == "hangup"
    assert all(s.kind != "hangup" for s in call.steps[:-1])
    for step in call.steps:
        assert 0 <= step.delay_s <= 3.0
        if step.kind == "say":
            assert step.audio == f"{step.id}.wav"
            assert step.text.strip()
            assert step.expect in ("reply", "barge_in", "no_interrupt", "none")
            assert step.after != "previous"


@pytest.mark.parametrize("name", [n for n in NAMES if BY_NAME[n].utterances()])
def test_durations_hold_the_voiced_span_and_a_short_lead(name: str) -> None:
    call = BY_NAME[name]
    for step in call.utterances():
        duration = wav(call.audio_path(step)).duration_s
        assert 0 < step.speech_start_s < step.speech_end_s <= duration
        lead_in, lead_out = step.speech_start_s, duration - step.speech_end_s
        if is_noisy(call):
            assert NOISE_LEAD_S[0] <= lead_in <= NOISE_LEAD_S[1], step.id
            assert NOISE_LEAD_S[0] <= lead_out <= NOISE_LEAD_S[1], step.id
        else:
            assert lead_in <= CLEAN_LEAD_S + 1e-3, step.id
            assert lead_out <= CLEAN_LEAD_S + 1e-3, step.id


@pytest.mark.parametrize("name", [n for n in NAMES if BY_NAME[n].utterances()])
def test_measured_voiced_span_matches_the_labels(name: str) -> None:
    """-40 dB of the peak after μ-law decoding; for noisy calls, after subtracting the noise."""
    call = BY_NAME[name]
    for step in call.utterances():
        start, end = voiced_span(speech(call, step))
        assert abs(start - step.speech_start_s) <= TOLERANCE_S, (step.id, start, step.speech_start_s)
        assert abs(end - step.speech_end_s) <= TOLERANCE_S, (step.id, end, step.speech_end_s)


@pytest.mark.parametrize("name", [n for n in NAMES if BY_NAME[n].utterances()])
def test_pauses_are_silent_and_the_only_long_silences(name: str) -> None:
    call = BY_NAME[name]
    for step in call.utterances():
        data = speech(call, step)
        previous_end = step.speech_start_s
        for a, b in step.pauses:
            assert previous_end < a < b < step.speech_end_s, (step.id, step.pauses)
            previous_end = b
            margin = 0.005
            quiet = silences(data, a + margin, b - margin, b - a - 2 * margin - 1 / RATE)
            assert quiet, f"{step.id}: speech inside the pause {a}-{b}"
        for a, b in silences(data, step.speech_start_s, step.speech_end_s, 0.3):
            assert any(a < pe and ps < b for ps, pe in step.pauses), f"{step.id}: unlabelled silence {a}-{b}"


@pytest.mark.parametrize("name", [n for n in NAMES if BY_NAME[n].utterances()])
def test_speech_level_and_length_fit_the_text(name: str) -> None:
    call = BY_NAME[name]
    for step in call.utterances():
        data = active(speech(call, step), step)
        dbfs = 10 * math.log10(power(data) / 32768**2)
        assert -26.0 <= dbfs <= -14.0, (step.id, dbfs)
        seconds = len(data) / 2 / RATE
        words = len(step.text.split())
        if call.category != "voicemail":  # its span includes the beep
            assert 0.12 * words <= seconds <= 0.9 * words + 0.3, (step.id, seconds, words)


# --------------------------------------------------------------------------- per category


@pytest.mark.parametrize("name", calls_in("plain", "noise"))
def test_plain_calls_are_two_to_four_question_and_answer_turns(name: str) -> None:
    call = BY_NAME[name]
    says = call.utterances()
    assert 2 <= len(says) <= 4
    assert [s.kind for s in call.steps] == ["say"] * len(says) + ["hangup"]
    assert all(s.expect == "reply" and not s.pauses for s in says)
    assert says[0].after in ("call_start", "agent_done")
    assert all(s.after == "agent_done" for s in says[1:])
    assert call.steps[-1].after == "agent_done"


@pytest.mark.parametrize("name", calls_in("pauses"))
def test_pause_calls_hold_one_or_two_pauses_of_300_to_700_ms(name: str) -> None:
    call = BY_NAME[name]
    paused = [s for s in call.utterances() if s.pauses]
    assert paused
    for step in paused:
        assert 1 <= len(step.pauses) <= 2
        assert all(0.3 - 1e-3 <= b - a <= 0.7 + 1e-3 for a, b in step.pauses), step.pauses
        assert step.expect == "reply"
        assert "..." in step.text


def test_only_pause_calls_and_the_voicemail_beep_have_pauses() -> None:
    for call in CALLS:
        if call.category not in ("pauses", "voicemail"):
            assert not any(s.pauses for s in call.utterances()), call.name


@pytest.mark.parametrize(("name", "delays"), [(n, (0.3, 0.6)) for n in calls_in("barge_in_early")]
                         + [(n, (1.5, 2.5)) for n in calls_in("barge_in_late")])
def test_barge_ins_follow_a_normal_turn_and_talk_long_enough(name: str, delays: tuple[float, float]) -> None:
    call = BY_NAME[name]
    barges = [i for i, s in enumerate(call.steps) if s.expect == "barge_in"]
    assert barges
    for i in barges:
        step = call.steps[i]
        assert step.kind == "say" and step.after == "agent_start"
        assert delays[0] <= step.delay_s <= delays[1], step.delay_s
        assert step.speech_end_s - step.speech_start_s >= 0.8
        before = [s for s in call.steps[:i] if s.kind == "say"]
        assert before and before[-1].expect == "reply", "a barge-in needs an agent reply to cut into"


@pytest.mark.parametrize("name", calls_in("backchannel"))
def test_backchannels_are_short_and_followed_by_normal_turns(name: str) -> None:
    call = BY_NAME[name]
    steps = list(call.steps)
    backs = [i for i, s in enumerate(steps) if s.expect == "no_interrupt"]
    assert backs
    for i in backs:
        step = steps[i]
        assert step.text in BACKCHANNELS
        assert step.after == "agent_start" and 0.8 <= step.delay_s <= 2.0
        assert 0.15 <= step.speech_end_s - step.speech_start_s <= 0.35
        assert steps[i - 1].kind == "say" and steps[i - 1].expect == "reply"
        assert any(s.kind == "say" and s.expect == "reply" and s.after == "agent_done" for s in steps[i + 1 :])


def test_no_interrupt_is_only_expected_of_backchannels() -> None:
    for call in CALLS:
        for step in call.utterances():
            if step.expect == "no_interrupt":
                assert call.category == "backchannel" and step.text in BACKCHANNELS


def test_noise_calls_cover_every_kind_at_10_and_20_db() -> None:
    noisy = [BY_NAME[n] for n in calls_in("noise")]
    assert {round(snr_db(c)) for c in noisy} >= {10, 20}
    for kind in NOISE_KINDS:
        assert any(kind in c.description.split("Background:")[1] for c in noisy), kind
    assert not any(is_noisy(c) for c in CALLS if c.category != "noise")


@pytest.mark.parametrize("name", calls_in("noise"))
def test_noise_wav_is_a_steady_loop_mentioned_in_the_description(name: str) -> None:
    call = BY_NAME[name]
    assert "noise.wav" in call.description
    noise = pcm(call.directory / "noise.wav")
    assert wav(call.directory / "noise.wav").duration_s >= 3.0
    mean = audioop.rms(noise, 2)
    window = 2 * RATE // 10
    levels = [audioop.rms(noise[i : i + window], 2) for i in range(0, len(noise) - window + 1, window)]
    assert min(levels) > mean * 10 ** (-15 / 20), "the noise drops out"
    # It loops: the step from the last sample back to the first is no bigger than a typical step.
    x = samples(noise)
    steps = sorted(abs(x[i + 1] - x[i]) for i in range(len(x) - 1))
    assert abs(x[0] - x[-1]) <= steps[int(0.999 * len(steps))]


@pytest.mark.parametrize("name", calls_in("noise"))
def test_noise_runs_from_first_to_last_sample_at_the_stated_snr(name: str) -> None:
    call = BY_NAME[name]
    noise_power = power(pcm(call.directory / "noise.wav"))
    energy = samples_n = 0.0
    for step in call.utterances():
        mixed, alone = pcm(call.audio_path(step)), speech(call, step)
        # Outside the voiced span the WAV is the looped noise.wav, sample for sample.
        lead_in, lead_out = cut(alone, 0, step.speech_start_s), cut(alone, step.speech_end_s, 1e9)
        assert audioop.max(lead_in, 2) == 0 and audioop.max(lead_out, 2) == 0, step.id
        assert power(cut(mixed, 0, step.speech_start_s)) > noise_power * 10 ** (-15 / 10)
        assert power(cut(mixed, step.speech_end_s, 1e9)) > noise_power * 10 ** (-15 / 10)
        data = active(alone, step)
        energy += power(data) * len(data) / 2
        samples_n += len(data) / 2
    measured = 10 * math.log10(energy / samples_n / noise_power)
    assert abs(measured - snr_db(call)) <= 1.0, measured


@pytest.mark.parametrize("name", calls_in("dtmf"))
def test_dtmf_calls_key_digits_after_a_turn(name: str) -> None:
    call = BY_NAME[name]
    keyed = [i for i, s in enumerate(call.steps) if s.kind == "dtmf"]
    assert keyed
    for i in keyed:
        step = call.steps[i]
        assert re.fullmatch(r"[0-9*#A-D]+", step.digits)
        assert len(step.digits) >= 2
        assert 0.1 <= step.interval_s <= 1.0
        assert step.expect == "reply" and step.after == "agent_done"
        assert any(s.kind == "say" for s in call.steps[:i])


@pytest.mark.parametrize("name", calls_in("silent"))
def test_silent_callee_waits_then_hangs_up(name: str) -> None:
    call = BY_NAME[name]
    assert call.answer == "human"
    assert not call.utterances()
    assert [s.kind for s in call.steps] == ["wait", "hangup"]
    assert call.steps[0].after == "call_start" and 7.0 <= call.steps[0].duration_s <= 10.0


@pytest.mark.parametrize("name", calls_in("voicemail"))
def test_voicemail_greeting_ends_with_a_1khz_beep(name: str) -> None:
    call = BY_NAME[name]
    assert call.answer == "voicemail"
    assert [s.kind for s in call.steps] == ["say", "wait", "hangup"]
    greeting, wait = call.steps[0], call.steps[1]
    assert greeting.after == "call_start" and greeting.expect == "none"
    assert "leave" in greeting.text.lower() and "tone" in greeting.text.lower()
    assert 5.0 <= wait.duration_s <= 10.0
    match = re.search(r"beep from (\d+\.\d+) s to (\d+\.\d+) s", call.description)
    assert match, "the description gives the beep time"
    beep_start, beep_end = float(match.group(1)), float(match.group(2))
    assert 0.35 <= beep_end - beep_start <= 0.45
    assert abs(beep_end - greeting.speech_end_s) <= TOLERANCE_S
    assert greeting.pauses and abs(greeting.pauses[-1][1] - beep_start) <= TOLERANCE_S
    data = pcm(call.audio_path(greeting))
    assert tone_share(cut(data, beep_start + 0.02, beep_end - 0.02), 1000.0) > 0.95
    assert tone_share(cut(data, greeting.speech_start_s, greeting.pauses[-1][0]), 1000.0) < 0.2


# --------------------------------------------------------------------------- the generator

_HAVE_TOOLS = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def test_generator_names_the_missing_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.corpus import generate

    monkeypatch.setattr(generate.shutil, "which", lambda tool: None if tool == "sox" else "/usr/bin/" + tool)
    with pytest.raises(generate.ToolMissing, match=r"needs sox .*apt-get install espeak-ng sox"):
        generate.require_tools()
    assert generate.main(["--out", "/nonexistent/never-written"]) == 2


def test_generator_defines_exactly_the_committed_calls() -> None:
    from bench.corpus import generate

    assert sorted(c.name for c in generate.CALLS) == NAMES


@pytest.mark.skipif(not _HAVE_TOOLS, reason="needs espeak-ng and sox (apt-get install espeak-ng sox)")
@pytest.mark.parametrize("name", ["pauses-02-address", "backchannel-01-plans", "noise-street-10db"])
def test_regenerating_a_call_reproduces_the_committed_bytes(name: str, tmp_path: Path) -> None:
    from bench.corpus import generate

    generate.generate(tmp_path, only=[name], quiet=True)
    fresh = sorted(p.name for p in (tmp_path / name).iterdir())
    assert fresh == sorted(p.name for p in (ROOT / name).iterdir())
    for file in fresh:
        assert (tmp_path / name / file).read_bytes() == (ROOT / name / file).read_bytes(), file
