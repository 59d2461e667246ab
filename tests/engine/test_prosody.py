"""The final pitch contour (engine/prosody.py): synthetic glides, and the corpus's own voices at
the pauses issue 13 is about."""

from __future__ import annotations

import math
import struct

import pytest

from bench.corpus.contour import line_contours
from bench.corpus.model import CORPUS_DIR, FIELD_DIR
from engine.prosody import CONTOUR_WINDOW_S, Contour, PauseAudio, contour_slope, final_contour

RATE = 8000


def glide(start_hz: float, end_hz: float, seconds: float = CONTOUR_WINDOW_S, rate: int = RATE) -> bytes:
    """A voiced-like tone (fundamental plus two harmonics) gliding exponentially in pitch."""
    n = int(seconds * rate)
    phase, out = 0.0, []
    for i in range(n):
        f = start_hz * (end_hz / start_hz) ** (i / n)
        phase += 2 * math.pi * f / rate
        out.append(int(6000 * (math.sin(phase) + 0.5 * math.sin(2 * phase) + 0.25 * math.sin(3 * phase))))
    return struct.pack(f"<{n}h", *out)


def test_a_falling_glide_falls_a_rising_one_rises_and_a_steady_tone_is_level():
    assert final_contour(glide(220, 150)) is Contour.FALL
    assert final_contour(glide(150, 220)) is Contour.RISE
    assert final_contour(glide(180, 180)) is Contour.LEVEL
    # 12 * log2(150/220) semitones over half a second: about -13 st/s
    assert contour_slope(glide(220, 150)) == pytest.approx(12 * math.log2(150 / 220) / CONTOUR_WINDOW_S, abs=1.5)


def test_silence_and_too_little_audio_are_unknown():
    assert final_contour(bytes(int(CONTOUR_WINDOW_S * RATE) * 2)) is Contour.UNKNOWN
    assert final_contour(glide(220, 150, seconds=0.05)) is Contour.UNKNOWN
    assert final_contour(b"") is Contour.UNKNOWN


def test_16_khz_audio_reads_as_8_khz_does():
    for a, b in ((220, 150), (150, 220)):
        assert final_contour(glide(a, b, rate=16000), 16000) is final_contour(glide(a, b))
    with pytest.raises(ValueError):
        final_contour(glide(220, 150), 11025)


def test_the_pause_audio_reads_its_contour_once_and_only_when_asked():
    pause = PauseAudio(glide(220, 150))
    assert "bytes" in repr(pause)
    assert pause.contour() is Contour.FALL and pause.contour() is Contour.FALL
    assert repr(pause) == "PauseAudio(fall)"
    assert PauseAudio().contour() is Contour.UNKNOWN
    assert PauseAudio(contour=Contour.RISE).contour() is Contour.RISE


def _contours(root, line):
    script, step = line.split("/")
    import json
    text = next(s["text"] for s in json.loads((root / script / "script.json").read_text())["steps"]
                if s.get("id") == step)
    return line_contours(root / script / f"{step}.wav", text)


def test_a_comma_keeps_the_voice_up_where_the_words_cannot_tell_and_the_line_end_falls():
    # "Okay, I'll think about it. Thanks, [280 ms] bye." and "alright I guess I'll wait then, [340 ms] thanks":
    # stripped of punctuation, "thanks" and "...wait then" read done; the voice says not yet.
    for root, line, before in ((CORPUS_DIR, "backchannel-01-plans/u5", "Okay, I'll think about it. Thanks,"),
                               (FIELD_DIR, "field-01-espeak-140/u3", "alright I guess I'll wait then,")):
        found = _contours(root, line)
        at_comma = [c for kind, ms, words, c in found if kind == "pause" and ms >= 250 and words == before]
        assert at_comma and all(c is Contour.RISE for c in at_comma), found
        assert found[-1][0] == "end" and found[-1][3] is Contour.FALL


def test_unsure_words_at_a_line_end_fall_and_a_question_rises():
    # "Great, thank you." and "...a seven out of ten I think": held today without punctuation.
    for root, line in ((CORPUS_DIR, "backchannel-03-returns/u5"), (FIELD_DIR, "field-10-piper-175/u3")):
        assert _contours(root, line)[-1][3] is Contour.FALL
    assert _contours(CORPUS_DIR, "backchannel-01-plans/u3")[-1][3] is Contour.RISE  # "Which one is the cheapest?"


@pytest.mark.slow
def test_over_the_whole_corpus_commas_do_not_fall_and_statements_do():
    from bench.corpus.contour import _class
    from bench.corpus.model import load_corpus

    counts: dict[str, list[Contour]] = {}
    for root in (CORPUS_DIR, FIELD_DIR):
        for script in load_corpus(root):
            for step in script.steps:
                if step.kind == "say" and step.expect == "reply" and step.audio:
                    for kind, ms, words, contour in line_contours(root / script.name / step.audio, step.text):
                        if kind == "end" or ms >= 150:
                            counts.setdefault(_class(kind, words), []).append(contour)
    commas, ends = counts["mid-line , ..."], counts["line end .!"]
    assert sum(c is not Contour.FALL for c in commas) >= 0.9 * len(commas)  # 60 of 65 today
    assert sum(c is Contour.FALL for c in ends) >= 0.65 * len(ends)  # 58 of 83 today
