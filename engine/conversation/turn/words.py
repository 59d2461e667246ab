"""Comparing transcripts word by word (case, punctuation and non-speech tags aside)."""

from __future__ import annotations

import re

# Letters and digits of any script ("алло", "sí", "4"), with inner apostrophes ("it's").
_WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_NON_WORDS = re.compile(r"\([^)]*\)")


def word_count(text: str) -> int:
    """Recognised words, leaving out bracketed non-speech tags such as "(unrecognised speech)"."""
    return len(_WORDS.findall(_NON_WORDS.sub(" ", text.lower())))


def words_of(text: str) -> list[str]:
    """The recognised words, lower-cased, without punctuation or non-speech tags."""
    return _WORDS.findall(_NON_WORDS.sub(" ", text.lower()))


def same_words(a: str, b: str) -> bool:
    """Whether two transcripts say the same thing (case and punctuation aside). Two texts with no
    words say nothing alike: a reply to one is no answer to the other."""
    words = _WORDS.findall(a.lower())
    return bool(words) and words == _WORDS.findall(b.lower())


def without_tags(text: str) -> str:
    """The transcript with its non-speech tags taken out."""
    return _NON_WORDS.sub("", text).strip()
