"""Where a registered line's words fall in its audio: the STT emulator's word timing.

A real recogniser that has heard a caller up to a pause transcribes every word said before
it, and none after. The emulator knows a line's text and audio but not its word timings, so
it estimates them: the line's pauses (stretches of ``PAUSE_FRAMES`` or more below the speech
level, read from the audio itself) are matched to the word boundaries nearest to where the
words, spread by their length over the speaking time, would put them, preferring the
boundaries the text punctuates; a line's "..." marks (the corpus's labelled pauses) take its
longest silences first. Between pauses the words are spread over the audio by their length.

:func:`word_breaks` returns the pauses as ``(first, last, words)`` in frame positions: a
hearing that stops anywhere from frame ``first`` (the pause's first quiet frame) to ``last``
(its last) has said exactly ``words`` words. Pure functions; run once per registered line.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

__all__ = ["PAUSE_FRAMES", "Break", "word_breaks", "word_weights"]

PAUSE_FRAMES = 6
"""A pause is this many quiet 20 ms frames (120 ms) or more: longer than a stop's closure, as
long as the shortest pause a caller makes between words (a comma, a breath)."""
QUIET_RMS = 300
"""A frame below this (and below ``QUIET_OF_PEAK`` of the line's peak) is not speech ..."""
QUIET_OF_PEAK = 0.1
"""... so in a line recorded over loud noise, no pause is found and the words are spread evenly."""
SENTENCE_BONUS = 0.3
"""How much nearer (in shares of the speaking time) a boundary after ".?!" counts ..."""
CLAUSE_BONUS = 0.25
"""... and one after ",;:" or a dash, than an unpunctuated boundary."""
SKIP_COST = 0.15
"""A pause matched to no boundary (inside a word, or more pauses than boundaries) costs this."""
FULL_PAUSE_FRAMES = 12
"""Bonus and skip cost scale with a pause's length up to this (240 ms)."""

Break = tuple[int, int, int]
"""(first frame of a pause, its last frame, words said before it)."""

_SENTENCE = re.compile(r"[.?!][\"')\]]*$")
_CLAUSE = re.compile(r"[,;:\-–—][\"')\]]*$")
_MARK = ("...", "…")
_LETTERS = re.compile(r"[\w']")


def word_weights(words: Sequence[str]) -> list[int]:
    """Each word's share of the speaking time, roughly: its letters, plus one for the gap."""
    return [len(_LETTERS.findall(w)) + 1 for w in words]


def word_breaks(words: Sequence[str], rms: Sequence[int]) -> tuple[Break, ...]:
    """The line's pauses and the words said before each (see the module doc); ``rms`` is the
    line's per-frame level. Ascending in frames and in words."""
    pauses = _pauses(rms)
    if not pauses or len(words) < 2:
        return ()
    cum = [0]
    for weight in word_weights(words):
        cum.append(cum[-1] + weight)
    # The marked pauses first (the longest silences, in order), then every other pause is matched
    # inside the stretch between two of them.
    marks = [i + 1 for i, w in enumerate(words[:-1]) if w.endswith(_MARK)]
    anchors: list[tuple[tuple[int, int], int]] = []
    if marks and len(pauses) >= len(marks):
        longest = sorted(sorted(pauses, key=lambda p: p[1] - p[0], reverse=True)[: len(marks)])
        anchors = list(zip(longest, marks, strict=True))
    breaks: list[Break] = []
    limit = _quiet_below(rms)
    loud = [i for i, level in enumerate(rms) if level >= limit]
    first_frame, last_frame = loud[0], loud[-1]
    lo = ((first_frame - 1, first_frame - 1), 0)
    for hi in (*anchors, ((last_frame + 1, last_frame + 1), len(words))):
        inside = [p for p in pauses if lo[0][1] < p[0] and p[1] < hi[0][0]]
        breaks += _match(inside, cum, lo, hi, words)
        if hi[1] < len(words):
            breaks.append((hi[0][0], hi[0][1], hi[1]))
        lo = hi
    return tuple(breaks)


def _quiet_below(rms: Sequence[int]) -> float:
    return max(QUIET_RMS, QUIET_OF_PEAK * max(rms, default=0))


def _pauses(rms: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of ``PAUSE_FRAMES`` or more quiet frames between speech: (first, last) frames."""
    limit = _quiet_below(rms)
    loud = [i for i, level in enumerate(rms) if level >= limit]
    return [(a + 1, b - 1) for a, b in itertools.pairwise(loud) if b - a - 1 >= PAUSE_FRAMES]


def _match(pauses: list[tuple[int, int]], cum: list[int], lo: tuple[tuple[int, int], int],
           hi: tuple[tuple[int, int], int], words: Sequence[str]) -> list[Break]:
    """The pauses strictly between two known breaks matched to word boundaries between theirs:
    the cheapest order-keeping assignment (dynamic programming over pauses x boundaries)."""
    w0, w1 = lo[1], hi[1]
    if not pauses or w1 - w0 < 2:
        return []
    start, end = lo[0][1] + 1, hi[0][0] - 1
    speaking = (end - start + 1) - sum(b - a + 1 for a, b in pauses)
    if speaking <= 0:
        return []
    # Where each pause falls in the stretch's speaking time, and each boundary in its words.
    shares, said = [], 0
    previous = start
    for a, b in pauses:
        said += a - previous
        shares.append(said / speaking)
        previous = b + 1
    span = cum[w1] - cum[w0]
    bounds = list(range(w0 + 1, w1))
    expected = [(cum[b] - cum[w0]) / span for b in bounds]
    bonus = [SENTENCE_BONUS if _SENTENCE.search(words[b - 1]) else
             CLAUSE_BONUS if _CLAUSE.search(words[b - 1]) else 0.0 for b in bounds]
    # best[j]: the cheapest (cost, choices) for the pauses so far that leaves the boundaries from
    # index j on free (a choice of -1: the pause matched none).
    inf = float("inf")
    best: list[tuple[float, tuple[int, ...]]] = [(0.0, ())] * (len(bounds) + 1)
    for share, (a, b) in zip(shares, pauses, strict=True):
        # A long pause is the likelier to be a sentence's or a clause's end, and the costlier to
        # leave inside a word; a short one may be a stop's closure or a fricative.
        strength = min(1.0, (b - a + 1) / FULL_PAUSE_FRAMES)
        nxt: list[tuple[float, tuple[int, ...]]] = [(inf, ())] * (len(bounds) + 1)
        for j in range(len(bounds) + 1):
            cost, chosen = best[j]
            if cost == inf:
                continue
            skip = (cost + SKIP_COST * strength, (*chosen, -1))
            if skip[0] < nxt[j][0]:
                nxt[j] = skip
            for k in range(j, len(bounds)):
                take = (cost + abs(share - expected[k]) - bonus[k] * strength, (*chosen, k))
                if take[0] < nxt[k + 1][0]:
                    nxt[k + 1] = take
        # Leaving more boundaries free is never worse: carry a cheaper state forward.
        for j in range(1, len(nxt)):
            if nxt[j - 1][0] <= nxt[j][0]:
                nxt[j] = nxt[j - 1]
        best = nxt
    _, chosen = best[-1]
    return [(a, b, bounds[k]) for (a, b), k in zip(pauses, chosen, strict=True) if k >= 0]
