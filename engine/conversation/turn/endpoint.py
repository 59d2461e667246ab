"""Ends of turn the VAD does not call: the recogniser's own, and noise that never lets the VAD stop.

Small judgements the policy consults at its pauses and finals; pure functions of the text and
the times passed in (sans-IO).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ...prosody import Contour
from ..turn_completion import Verdict, judge_text, judge_turn, punctuation_verdict
from .words import without_tags, word_count

_MARKS = re.compile(r"[^\w\s']")

SPEECH_FINAL_TRUST_S = 0.6
"""The VAD must have heard speech this long for the recogniser's speech_final (after its own
silence window, 500 ms at Telnyx's default) to overrule it."""


_WORDS_ONLY_FLAPS = 3
"""Wordless pauses that end a turn whose text has no final punctuation (2 with it)."""


class NoiseFlaps:
    """The VAD keeps hearing "speech" the recogniser turns into no new words, pause after pause
    (babble, loud noise): the caller is done. Real speech adds words at every pause, because
    each tentative end asks the recogniser to finalize."""

    __slots__ = ("_flaps", "_words_at_pause")

    def __init__(self) -> None:
        self._flaps = 0
        self._words_at_pause = 0

    def reset(self) -> None:
        """A new turn began."""
        self._flaps = 0

    def pause(self, text: str, *, final_owed: bool, quiet_run: bool = False, opening: bool = False) -> bool:
        """A tentative end on ``text``: whether noise keeps the turn open that is really over.
        ``quiet_run``: the "speech" before this pause was far under the caller's words, a breath
        or hiss in their pause (a slow caller's between two sentences), not noise: it neither
        counts as a flap nor clears the count. ``opening``: as for :func:`judge_text`."""
        words = word_count(text)
        # Only a pause whose finalize was answered counts: until then the recogniser has had
        # no chance to add the words.
        flapped = words > 0 and words == self._words_at_pause and not final_owed
        if quiet_run and flapped:
            return False
        self._flaps = self._flaps + 1 if flapped else 0
        self._words_at_pause = words
        # Final punctuation where the recogniser gives it: a pause inside a line flaps alike, and
        # words that read finished there would end the turn early.
        words_only = without_tags(text)
        if not words_only or self._flaps < 2:
            return False
        marked = punctuation_verdict(words_only)
        if marked is not None:
            return marked is Verdict.COMPLETE
        # A recogniser that does not punctuate: the words decide (a transcript punctuated inside
        # but not at its end reads unsure, never complete), on one flap more, as words that read
        # finished end pauses inside a line more often than punctuation does.
        return self._flaps >= _WORDS_ONLY_FLAPS and judge_text(words_only, opening=opening) is Verdict.COMPLETE


def recogniser_ends_turn(now: float, *, speech_final: bool, can_finalize: bool, voice_since: float,
                         turn_since: float, final_wait_s: float) -> bool:
    """Whether a final ends the turn the VAD holds open. It must say the recogniser heard the
    speech end (Deepgram marks it ``speech_final``; an engine that cannot finalize sends finals
    only after its own silence window), and the VAD must have heard "speech" all through that
    silence: Deepgram's speech_final comes soon after its silence, so the VAD's stretch must be
    older than SPEECH_FINAL_TRUST_S; a finals-only engine's final reports a silence up to its
    lag ago, so the turn (pauses included) must be older than that."""
    if can_finalize:
        return speech_final and now - voice_since >= SPEECH_FINAL_TRUST_S
    return now - turn_since >= max(SPEECH_FINAL_TRUST_S, final_wait_s)


def worth_speculating(text: str, incomplete_turn_hold_ms: int, *, opening: bool = False,
                      contour: Callable[[], Contour] | None = None) -> bool:
    """Only text the turn can end with: text the hold would keep open is nearly always a caller
    pausing mid-sentence, and each cancelled reply costs an LLM request."""
    return bool(text) and (not incomplete_turn_hold_ms
                           or judge_turn(text, opening=opening, contour=contour) is Verdict.COMPLETE)


def surely_finished(text: str) -> bool:
    """Evidence strong enough to end a turn before the VAD's end of turn: a recogniser that
    punctuates closed the turn on a question, which hands the floor to the agent, and its words
    alone read finished too (not only interjections: "Hello?"), with no hesitation in the turn
    ("it went out on... Tuesday?": a caller still finding words). A closed statement is not
    enough: callers leave 200-340 ms between two sentences of one line ("Yes, three o'clock.
    Thank you.", docs/benchmarks.md). Non-speech tags and unpunctuated text are no evidence."""
    words = without_tags(text)
    if not words.endswith("?") or words != text.strip() or "..." in words or "…" in words:
        return False
    return judge_text(_MARKS.sub(" ", words)) is Verdict.COMPLETE
