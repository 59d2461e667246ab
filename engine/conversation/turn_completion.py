"""Whether the caller's turn is over, judged from its transcript at a pause.

The endpointer ends a turn on silence alone; this module judges the words. It is sans-IO and
runs only at a pause (the tentative end, the end of turn), never per frame.

:func:`judge_text` answers :class:`Verdict.COMPLETE`, ``INCOMPLETE`` or ``UNSURE``:

* **Punctuation, where the recogniser gives it**, decides as before: a transcript ending in
  ``...`` (or ``,``, ``-``) trails off, one ending in ``.?!`` is a finished sentence. One
  punctuated elsewhere but not at its end ("Hi, I need to check on a parcel. The order") is
  a sentence the recogniser has not closed, or one it punctuates late: its words decide, as
  below, but it is at best unsure.
* **Without any punctuation** (engines and models that do not punctuate) the last words
  decide. A sentence cannot end on an article, a preposition, a conjunction, a possessive,
  an auxiliary or a filler ("my order number is", "it went out on", "um"); a caller who says
  "let me just find my card" or "no, sorry" is coming back. Unsure: a transcript that stops
  on a number of fewer than four digits (numbers are dictated in groups: "four seven two...
  nine one eight", "twenty one... Station Road"; four or more make a whole one: "it ends in
  three three eight one"; neither is "one" standing for a thing, "let's do that one", "the
  other one", nor a single number after a preposition of quantity or time, "instead of
  four", "at two", "out of ten"), and one made only of interjections ("okay", "yes", "great,
  thanks"), which either answer or preface more (callers pause 300-400 ms after them, as
  long as the end of turn), unless nothing has been said to the caller yet (answering the
  phone, "yeah, hello?", they wait for the agent), and one ending on a hedge ("the ninth, I
  think, at two"). Anything else is complete.

What the agent does with each (see :func:`hold_ms`): complete answers at the end of turn,
incomplete waits ``incomplete_turn_hold_ms`` more, unsure waits half of that. Speculation
runs on complete and unsure text, whose reply is then ready when the wait runs out.

:func:`judge_turn` adds the caller's voice at the pause (:mod:`engine.prosody`) where the
recogniser left no final mark: a final fall ends unsure words ("great thank you", "seven out
of ten I think"), and a continuation rise after words that read complete keeps them open a
moment (unsure: "alright I guess I'll wait then, [340 ms] thanks"), unless they ask a question
or answer the phone ("hello?"), which rise as they end. The recogniser's final punctuation,
where it gives one, outranks the voice.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Callable

from ..prosody import Contour

__all__ = ["Verdict", "hold_ms", "judge_text", "judge_turn", "punctuation_verdict"]


class Verdict(enum.Enum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    UNSURE = "unsure"


_TRAILS_OFF = ("...", "…", ",", "-", "–", "—", ":", ";")
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")
_TAG = re.compile(r"\([^)]*\)")
_TAG_END = re.compile(r"\([^)]*\)$")
"""A non-speech tag such as "(unrecognised speech, 1.4 s)": heard audio to answer."""
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_PUNCTUATED = re.compile(r"[.?!,;:…](?=\s)")
"""A mark between words (not inside "4.5"): this recogniser punctuates."""

# Words a sentence does not end on. Kept to function words that are rarely last: pronouns
# such as "that", wh-words ("sorry, what?"), adverbs ("I think so", "not really") and particles
# ("turn it off", "come over") end sentences often, so they are not here. A word missing costs
# at worst today's behaviour for an unpunctuated line; a word wrongly here, a hold.
_CONTINUES = frozenset(["a", "an", "the", "every", "my", "your", "his", "her", "its", "our", "their", "whose", "of",
                        "to", "in", "on", "at", "by", "for", "with", "from", "into", "onto", "about", "than", "via",
                        "per", "upon", "under", "between", "toward", "towards", "regarding", "including", "and", "or",
                        "but", "nor", "because", "if", "when", "while", "although", "though", "unless", "until",
                        "whether", "i", "i'm", "i've", "i'd", "i'll", "you're", "you've", "we're", "we've", "they're",
                        "it's", "that's", "there's", "here's", "what's", "he's", "she's", "let's", "um", "uh", "er",
                        "erm", "uhm", "very"])
_AUXILIARIES = frozenset(["is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "have", "has",
                          "had", "will", "would", "shall", "should", "can", "could", "may", "might", "must", "gonna",
                          "wanna", "gotta"])
# ... but after a pronoun an auxiliary is a short answer ("yes it is", "I do", "we can"), and
# after a wh-word it closes an embedded question ("can you tell me what my balance is").
_PRONOUNS = frozenset(["i", "you", "he", "she", "it", "we", "they", "that", "there", "this", "who"])
_WH = frozenset(["what", "where", "when", "how", "who", "which", "why", "whatever"])
_WH_WINDOW = 6
_INTERJECTIONS = frozenset(["yes", "yeah", "yep", "yup", "no", "nope", "okay", "ok", "alright", "right", "sure",
                            "great", "thanks", "thank", "you", "hi", "hello", "hey", "oh", "ah", "well", "so",
                            "perfect", "brilliant", "cool", "fine", "good", "lovely", "morning", "afternoon",
                            "evening", "sorry", "cheers"])
# Stalls and self-repairs near the end: the caller has more to say after fetching or correcting.
_STALLS = (
    ("let", "me", "just"), ("let", "me", "find"), ("let", "me", "check"), ("let", "me", "see"),
    ("let", "me", "look"), ("let", "me", "get"), ("let", "me", "grab"), ("hold", "on"),
    ("hang", "on"), ("one", "sec"), ("one", "second"), ("one", "moment"), ("just", "a", "sec"),
    ("just", "a", "second"), ("just", "a", "moment"), ("bear", "with", "me"),
)
_STALL_WINDOW = 6
"""A stall counts among the transcript's last words only: "let me check... okay, it's 42" is done."""
_HEDGES = (("i", "think"), ("i", "guess"), ("i", "believe"), ("you", "know"), ("i", "suppose"))
"""A hedge at the end either closes the line or sits inside it ("the ninth, I think, at two")."""
_REPAIRS = (("no", "sorry"), ("sorry", "no"), ("i", "mean"), ("or", "rather"), ("no", "wait"))
_REPEATS = {"double": 1, "triple": 2}
"""A repeat adds to the digit it precedes ("double five" is two digits)."""
_DIGIT_GROUP = 4
"""A number of this many digits is whole: the last four, an extension, a year, a price ("forty
nine ninety nine"), a PIN. Shorter ones are a group a longer number goes on from ("four seven
two... nine one eight", "twenty one... Station Road")."""
_NUMBERS = frozenset(["zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                      "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
                      "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
                      "hundred", "thousand", "double", "triple"])
_DETERMINERS = frozenset(["the", "a", "an", "this", "that", "which", "whichever", "each", "every", "any", "another",
                          "either", "neither", "my", "your", "his", "her", "our", "their"])
"""Before "one" (directly or across one describing word) these make it a pronoun, not a digit:
"let's do that one", "which one", "the other one", "the new one", "a cheaper one"."""
_NUMBER_NOUNS = frozenset(["number", "no", "option", "extension", "line", "platform", "flat", "unit", "room"])
"""... except a word that names what a numeral follows ("the number one", "the flat one" read
as a label): "one" there is still a digit."""
_QUANTITY_PREPOSITIONS = frozenset(["of", "for", "at", "by", "after", "before", "around", "about", "until", "till",
                                    "past", "than"])
"""Prepositions a quantity or a clock time follows ("instead of four", "a table for six", "at
two", "out of ten", "after three", "half past two"). Not those that introduce a code or an
address part by part: "in" ("it ends in four..."), "with" ("starts with seven..."), "on",
"from", "to", "under" (a name). A house number after "at" ("I live at nine... Station Road")
reads as a time here; a caller pausing there longer than the end of turn is answered over (no
corpus line does: every prefix this rule finishes is followed by at most 140 ms of silence)."""
_DICTATION_ONLY = frozenset(["oh", "double", "triple"])
"""Number words that start or go on with a dictation, never stand as a quantity ("reach me at
oh...", "for double...")."""


def judge_text(text: str, *, opening: bool = False) -> Verdict:
    """The verdict on a transcript so far (see the module doc). Empty text is complete: there
    is nothing to wait for. ``opening``: the agent has not said a word yet in the call, so the
    caller is answering the phone ("hello", "yeah hello?"), and then waits for the agent."""
    stripped = text.rstrip()
    marked = punctuation_verdict(stripped)
    if marked is not None:
        return marked
    verdict = _judge_words(_WORD.findall(stripped.lower().replace("’", "'")), opening)
    if verdict is Verdict.COMPLETE and _PUNCTUATED.search(_TAG.sub("", stripped)):
        return Verdict.UNSURE
    return verdict


def judge_turn(text: str, *, opening: bool = False, contour: Callable[[], Contour] | None = None) -> Verdict:
    """The verdict on the words, corrected by the voice's final contour where the recogniser
    gave no final mark (see the module doc). ``contour`` is asked only when it could change the
    verdict: reading it costs a pitch track."""
    verdict = judge_text(text, opening=opening)
    if contour is None or verdict is Verdict.INCOMPLETE or punctuation_verdict(text) is not None:
        return verdict
    if verdict is Verdict.UNSURE:
        return Verdict.COMPLETE if contour() is Contour.FALL else verdict
    if opening or _asks(text):
        return verdict  # answering the phone ("hello?") or asking: a rise that hands the turn over
    return Verdict.UNSURE if contour() is Contour.RISE else verdict


_QUESTION_WORDS = frozenset(["what", "what's", "which", "who", "who's", "whom", "whose", "where", "where's", "when",
                             "why", "how", "how's"])
_INVERTED = frozenset(["can", "could", "would", "will", "do", "does", "did", "is", "are", "was", "were", "should",
                       "shall", "may", "have", "has", "am", "won't", "can't", "don't", "doesn't", "isn't", "aren't"])
_SUBJECTS = frozenset(["i", "you", "we", "they", "he", "she", "it", "this", "that", "there", "somebody", "someone",
                       "anybody", "anyone"])
_QUESTION_WINDOW = 12


def _asks(text: str) -> bool:
    """Whether the last words look like a question (a wh-word, or a verb before its subject:
    "can you", "is this"): a rise at their end is the question's, not a comma's."""
    words = _WORD.findall(text.lower().replace("’", "'"))[-_QUESTION_WINDOW:]
    return any(w in _QUESTION_WORDS for w in words) or any(
        a in _INVERTED and b in _SUBJECTS for a, b in itertools.pairwise(words))


def punctuation_verdict(text: str) -> Verdict | None:
    """What the transcript's final punctuation (or a closing non-speech tag) says, if anything:
    the judgement that does not guess from words."""
    stripped = text.rstrip()
    if not stripped or _TAG_END.search(stripped):
        return Verdict.COMPLETE
    if stripped.endswith(_TRAILS_OFF):
        return Verdict.INCOMPLETE
    if _SENTENCE_END.search(stripped):
        return Verdict.COMPLETE
    return None


def _judge_words(words: list[str], opening: bool = False) -> Verdict:
    if not words:
        return Verdict.COMPLETE
    last = words[-1]
    if last in _CONTINUES:
        return Verdict.INCOMPLETE
    if last in _AUXILIARIES and not (
        (len(words) > 1 and words[-2] in _PRONOUNS) or any(w in _WH for w in words[-_WH_WINDOW:-1])
    ):
        return Verdict.INCOMPLETE
    tail = tuple(words[-_STALL_WINDOW:])
    if any(_contains(tail, stall) for stall in _STALLS):
        return Verdict.INCOMPLETE
    if any(tail[-len(repair):] == repair for repair in _REPAIRS):
        return Verdict.INCOMPLETE
    if all(w in _INTERJECTIONS for w in words):
        return Verdict.COMPLETE if opening else Verdict.UNSURE
    if last in _NUMBERS or last.isdigit():
        if _digits_at_end(words) >= _DIGIT_GROUP or _pronoun_one(words) or _quantity(words):
            return Verdict.COMPLETE
        return Verdict.UNSURE
    if any(tail[-len(hedge):] == hedge for hedge in _HEDGES):
        return Verdict.UNSURE
    return Verdict.COMPLETE


def _digits_at_end(words: list[str]) -> int:
    """How many digits the number words ending the transcript say ("double five": two)."""
    digits = 0
    for word in reversed(words):
        if word.isdigit():
            digits += len(word)
        elif word in _NUMBERS:
            digits += _REPEATS.get(word, 1)
        else:
            break
    return digits


def _pronoun_one(words: list[str]) -> bool:
    """ "one" standing for a thing, not a digit: after a determiner ("that one", "which one"),
    or after a determiner and one describing word ("the other one", "the new one"). A digit
    group reads otherwise: "twenty one", "S W one", "the number one"."""
    if words[-1] != "one" or len(words) < 2:
        return False
    before = words[-2]
    if before in _DETERMINERS:
        return True
    return (len(words) > 2 and words[-3] in _DETERMINERS and not before.isdigit()
            and before not in _NUMBERS and before not in _NUMBER_NOUNS and before not in _CONTINUES
            and before not in _AUXILIARIES)


def _quantity(words: list[str]) -> bool:
    """A single number after a preposition of quantity or time ("instead of four", "at two",
    "out of ten"): a whole answer, not the first group of a dictation. Two or more number words
    ("at twenty one...", "at four seven...") still read as a group a longer number may follow."""
    last = words[-1]
    single = (last in _NUMBERS and last not in _DICTATION_ONLY) or (last.isdigit() and len(last) <= 2)
    return single and len(words) > 1 and words[-2] in _QUANTITY_PREPOSITIONS


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(words[i:i + n] == phrase for i in range(len(words) - n + 1))


def hold_ms(verdict: Verdict, incomplete_hold_ms: int) -> int:
    """How much longer than the end of turn to wait for the caller, by verdict."""
    if verdict is Verdict.INCOMPLETE:
        return incomplete_hold_ms
    if verdict is Verdict.UNSURE:
        return incomplete_hold_ms // 2
    return 0
