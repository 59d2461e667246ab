"""Text to passages: paragraphs packed up to a size, each carrying its section's heading.

A passage is what the agent reads in the turn, so it is short (about 700 characters: three of
them add a few hundred tokens to the request) and whole (cut at paragraph, then sentence,
boundaries). Each starts with the heading it sits under: a question about "returns" finds the
paragraph under "Returns policy" that never repeats the word.
"""

from __future__ import annotations

import re

TARGET_CHARS = 700
MAX_CHARS = 1000

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")


def chunk_text(text: str, *, target: int = TARGET_CHARS, limit: int = MAX_CHARS) -> list[str]:
    headings: list[str] = []
    chunks: list[str] = []
    current: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        body = " ".join(current).strip()
        if body:
            title = " / ".join(h for h in headings if h)
            chunks.append(f"{title}: {body}" if title else body)
        current, size = [], 0

    for block in _blocks(text):
        heading = _HEADING.match(block)
        if heading:
            flush()
            level = len(heading.group(1))
            del headings[level - 1:]
            headings.extend([""] * (level - 1 - len(headings)))
            headings.append(heading.group(2).strip())
            continue
        for piece in _pieces(block, limit):
            if size and size + len(piece) > target:
                flush()
            current.append(piece)
            size += len(piece) + 1
    flush()
    return chunks


def _blocks(text: str) -> list[str]:
    """Paragraphs (blank-line separated); a heading line is a block of its own."""
    blocks: list[str] = []
    para: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _HEADING.match(line) or not line.strip():
            if para:
                blocks.append(" ".join(para))
                para = []
            if line.strip():
                blocks.append(line)
            continue
        para.append(line.strip())
    if para:
        blocks.append(" ".join(para))
    return blocks


def _pieces(block: str, limit: int) -> list[str]:
    """A paragraph, or its sentences packed under ``limit`` when it is longer (words as a last resort)."""
    block = re.sub(r"\s+", " ", block).strip()
    if len(block) <= limit:
        return [block] if block else []
    out: list[str] = []
    for sentence in _SENTENCE.split(block):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append(sentence[:cut])
            sentence = sentence[cut:].lstrip()
        if out and len(out[-1]) + 1 + len(sentence) <= limit:
            out[-1] += " " + sentence
        elif sentence:
            out.append(sentence)
    return out
