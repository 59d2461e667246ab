"""Cut streamed LLM text into speakable pieces for text-to-speech.

The first piece goes out as early as it can sound natural (a clause boundary once a
few words have arrived), because it decides when the caller first hears the agent;
later pieces are whole sentences, which synthesize with better prosody.
"""

from __future__ import annotations

import re

# What ends a sentence (and may close after it) and what ends a clause: the cuts here, and what
# a piece ended on for those who judge it (openers.py).
_SENTENCE = r"[.!?…]+[\"')\]]*"
_CLAUSE = r"[,;:—–]+"
_SENTENCE_END = re.compile(rf"{_SENTENCE}(?=\s)|{_SENTENCE}$")
_CLAUSE_END = re.compile(rf"{_CLAUSE}(?=\s)")
ENDS_SENTENCE = re.compile(rf"{_SENTENCE}$")
ENDS_CLAUSE = re.compile(rf"{_CLAUSE}$")
_MARKDOWN = re.compile(r"[*_`#>]+")
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "no", "approx", "jr", "sr"})


def _is_abbreviation(text_before_period: str) -> bool:
    words = text_before_period.split()
    return bool(words) and words[-1].strip("\"'(").lower() in _ABBREVIATIONS


class SpeechChunker:
    """Feed LLM text deltas; get back pieces ready for TTS. ``flush()`` at the end."""

    __slots__ = ("_buffer", "_first_done", "min_first_words", "max_chunk_chars")

    def __init__(self, *, min_first_words: int = 1, max_chunk_chars: int = 240) -> None:
        self._buffer = ""
        self._first_done = False
        self.min_first_words = min_first_words
        self.max_chunk_chars = max_chunk_chars

    def feed(self, text: str) -> list[str]:
        self._buffer += _MARKDOWN.sub("", text)
        pieces: list[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                return pieces
            piece, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if piece:
                pieces.append(piece)
                self._first_done = True

    def flush(self) -> list[str]:
        piece, self._buffer = self._buffer.strip(), ""
        return [piece] if piece else []

    def _next_cut(self) -> int | None:
        buffer = self._buffer
        for sentence in _SENTENCE_END.finditer(buffer):
            if sentence.group()[0] == "." and _is_abbreviation(buffer[: sentence.start()]):
                continue  # "Dr. Who", "e.g. this"
            if sentence.end() == len(buffer) and sentence.group() == "." and (
                sentence.start() == 0 or buffer[sentence.start() - 1].isdigit()
            ):
                break  # may still become "3.5": wait for the next token
            return sentence.end()
        if not self._first_done:
            clause = _CLAUSE_END.search(buffer)
            if clause is not None and len(buffer[: clause.start()].split()) >= self.min_first_words:
                return clause.end()
        if len(buffer) > self.max_chunk_chars:
            space = buffer.rfind(" ", 0, self.max_chunk_chars)
            return space if space > 0 else self.max_chunk_chars
        return None
