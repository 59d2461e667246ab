"""Ends of turn the VAD does not call: the recogniser's own, and noise that never lets the VAD stop.

Small judgements the policy consults at its pauses and finals; pure functions of the text and
the times passed in (sans-IO).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from ...prosody import Contour
from ..turn_completion import Verdict, judge_text, judge_turn, punctuation_verdict
from .words import without_tags, words_of

_MARKS = re.compile(r"[^\w\s']")

SPEECH_FINAL_TRUST_S = 0.6
"""The VAD must have heard speech this long for the recogniser's speech_final (after its own
silence window, 500 ms at Telnyx's default) to overrule it."""


_WORDS_ONLY_FLAPS = 3
"""Wordless pauses that end a turn whose text has no final punctuation (2 with it)."""


class NoiseFlaps:
    """The VAD keeps hearing "speech" the recogniser turns into no new words, pause after pause
    (babble, loud noise): the caller is done. Real speech adds words at every pause, because
    each tentative end asks the recogniser to finalize.

    Judged on the Finalizes' answers, in order: the answer for a pause at ``t`` covers the audio
    up to ``t``, so one without new words says the caller said nothing from their last words to
    ``t``. Their last words ended by the pause at or after which they were first seen (by an
    interim or the answer for that pause: an interim can show a word still being said). The
    turn ends only once that wordless stretch is as long as the VAD's own end of turn would be
    from that pause (``wordless_s``): in street noise a pause between two sentences ("Sorry, it's
    loud here. [240 ms] Yes, ...") flaps as fast as babble, but its answers bring the next words
    before the stretch is that long, while babble goes on flapping after the caller stops."""

    __slots__ = ("_flaps", "_words", "_words_at", "_asked", "wordless_s")

    def __init__(self, wordless_s: float = 0.28) -> None:
        self.wordless_s = wordless_s
        self._flaps = 0
        self._words: list[str] = []
        self._words_at = 0.0  # the caller's last words ended by then (inf: at the next pause)
        self._asked: list[tuple[float, bool]] = []  # Finalizes not yet answered: (when, quiet run before)

    def reset(self, now: float) -> None:
        """A new turn began: the caller may be talking from ``now`` on."""
        self._flaps = 0
        self._words_at = max(self._words_at, now)

    def asked(self, now: float, *, quiet_run: bool = True) -> None:
        """A Finalize went out at ``now``, at a pause (the VAD heard silence). ``quiet_run``: the
        "speech" before it was far under the caller's words, a breath or hiss in their pause (a
        slow caller's between two sentences), not noise: its answer neither counts as a flap nor
        clears the count (a Finalize not sent at a tentative end passes True: no evidence)."""
        self._words_at = min(self._words_at, now)
        self._asked.append((now, quiet_run))

    def heard(self, now: float, text: str, *, answer: bool, opening: bool = False) -> bool:
        """The transcript became ``text``, on an interim or a final; ``answer``: the final answers
        the oldest Finalize outstanding. Whether noise keeps the turn open that is really over.
        ``opening``: as for :func:`judge_text`."""
        asked_at, quiet = self._asked.pop(0) if answer and self._asked else (None, True)
        words = words_of(text)
        if words != self._words:
            # New words: said by the pause whose answer brought them; an interim's, by the next.
            self._words = words
            self._words_at = math.inf if asked_at is None else asked_at
            self._flaps = 0
            return False
        if asked_at is not None and self._words_at == math.inf:
            self._words_at = asked_at  # an interim's words, all said by this pause
        if asked_at is None or asked_at <= self._words_at or quiet:
            return False  # no answer, an answer for audio the words came from, or a breath
        self._flaps += 1
        words_only = without_tags(text)
        if not words_only or self._flaps < 2 or asked_at - self._words_at < self.wordless_s:
            return False
        # Final punctuation where the recogniser gives it: a pause inside a line flaps alike, and
        # words that read finished there would end the turn early.
        marked = punctuation_verdict(words_only)
        if marked is not None:
            return marked is Verdict.COMPLETE
        # A recogniser that does not punctuate: the words decide (a transcript punctuated inside
        # but not at its end reads unsure, never complete), on one flap more, as words that read
        # finished end pauses inside a line more often than punctuation does.
        return self._flaps >= _WORDS_ONLY_FLAPS and judge_text(words_only, opening=opening) is Verdict.COMPLETE


    def opening_pause_ends(self, now: float, text: str) -> bool:
        """A pause of a caller answering the phone ("Hello?"), who then waits for the agent: the
        answers so far show no words since theirs, and this pause comes as long after their words
        as the VAD's own end of turn would. Trust the short stretch since the last answer and end
        the turn now, not an answer later (~100 ms: babble's "Hello?"). Later turns wait for the
        answer that proves it: a caller pausing between two sentences in street noise flaps as
        fast as babble does."""
        words_only = without_tags(text)
        if not words_only or now - self._words_at < self.wordless_s:
            return False
        marked = punctuation_verdict(words_only)
        if marked is not None:
            return self._flaps >= 1 and marked is Verdict.COMPLETE
        # Unpunctuated: one wordless answer more, as in :meth:`heard`.
        return self._flaps >= _WORDS_ONLY_FLAPS - 1 and judge_text(words_only, opening=True) is Verdict.COMPLETE


VOICE_UNBROKEN_S = 4.0
"""Longer than callers speak without a pause the VAD hears (it hears the gaps between words;
field-08's dipping line, the case the voice gap is for, ran 2.3 s without one)."""


def recogniser_ends_turn(now: float, *, speech_final: bool, can_finalize: bool, voice_since: float,
                         turn_since: float, final_wait_s: float, voice_at: float = -math.inf,
                         voice_gap_s: float = 0.28) -> bool:
    """Whether a final ends the turn the VAD holds open. It must say the recogniser heard the
    speech end (Deepgram marks it ``speech_final``; an engine that cannot finalize sends finals
    only after its own silence window), and the VAD must have heard "speech" all through that
    silence: Deepgram's speech_final comes soon after its silence, so the VAD's stretch must be
    older than SPEECH_FINAL_TRUST_S; a finals-only engine's final reports a silence up to its
    lag ago, so the turn (pauses included) must be older than that.

    A recogniser's segmentation also cuts lines where the caller only drops their voice (a TTS
    voice ~9 dB down for half a second) and goes on: its final then lands while they talk, and
    Deepgram's says ``speech_final`` all the same. So the caller's own voice (``voice_at``: the
    last voiced frame far over their line's background, :mod:`engine.caller_voice`) must have
    been silent ``voice_gap_s`` too, the VAD's end of turn: babble keeps the VAD on but stays
    near the background, a caller does not. (A caller who goes on gets the next final, or the
    VAD's end: with interims a second apart, none may come to reopen a turn ended too soon.)
    With Deepgram, past VOICE_UNBROKEN_S of speech the VAD never paused in, its speech_final is
    trusted again: loud noise that began after the line's background was learnt (a TV, a road)
    reads as the caller's voice for as long as it lasts, and nothing else would end the turn."""
    if now - voice_at < voice_gap_s and (not can_finalize or now - voice_since < VOICE_UNBROKEN_S):
        return False
    if can_finalize:
        return speech_final and now - voice_since >= SPEECH_FINAL_TRUST_S
    return now - turn_since >= max(SPEECH_FINAL_TRUST_S, final_wait_s)


def worth_speculating(text: str, incomplete_turn_hold_ms: int, *, opening: bool = False,
                      contour: Callable[[], Contour] | None = None) -> bool:
    """Only text the turn can end with: text the hold would keep open is nearly always a caller
    pausing mid-sentence, and each cancelled reply costs an LLM request."""
    return bool(text) and (not incomplete_turn_hold_ms
                           or judge_turn(text, opening=opening, contour=contour) is Verdict.COMPLETE)


def surely_finished(text: str, *, opening: bool = False) -> bool:
    """Evidence strong enough to end a turn before the VAD's end of turn: a recogniser that
    punctuates closed the turn on a question, which hands the floor to the agent, and its words
    alone read finished too, with no hesitation in the turn ("it went out on... Tuesday?": a
    caller still finding words). Interjections alone ("Hello?") read finished only in the
    ``opening`` (:func:`judge_text`): a caller answering the phone asks and waits for the agent,
    while later a "Right?" or "Hello?" mid-call leads into more. A closed statement is not
    enough: callers leave 200-340 ms between two sentences of one line ("Yes, three o'clock.
    Thank you.", docs/benchmarks.md). Non-speech tags and unpunctuated text are no evidence."""
    words = without_tags(text)
    if not words.endswith("?") or words != text.strip() or "..." in words or "…" in words:
        return False
    return judge_text(_MARKS.sub(" ", words), opening=opening) is Verdict.COMPLETE
