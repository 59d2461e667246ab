"""bench.corpus.gaps: the pauses inside a caller's line and the words before them (issue 13)."""

from __future__ import annotations

from bench.corpus.gaps import line_pauses
from bench.corpus.model import CORPUS_DIR, load_corpus


def test_a_marked_mid_line_pause_is_found_after_its_words():
    script = next(s for s in load_corpus(CORPUS_DIR) if s.name == "pauses-01-order-number")
    step = next(s for s in script.steps if s.id == "u1")
    pauses = line_pauses(CORPUS_DIR / script.name / step.audio, step.text)
    longest = max(pauses)
    assert longest[0] >= 500  # the scripted pause, [3.395, 3.945] s
    assert longest[1] == "Hi, I need to check on a parcel. The order number is..."
    assert all(ms < longest[0] for ms, _ in pauses if (ms, _) != longest)
