"""Documents to text: plain text, Markdown, HTML (the stdlib parser) and PDF (pypdf).

The result is plain text with headings kept as Markdown ``#`` lines, which is what
:mod:`.chunking` cuts on. A document that cannot be read is a :class:`DocumentError` with a
message for the person who sent it, never a traceback.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import PurePath
from typing import ClassVar

from pypdf import PdfReader
from pypdf.errors import PdfReadError

CONTENT_TYPES = {
    "text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown", "text/html": "html",
    "application/xhtml+xml": "html", "application/pdf": "pdf",
}
_EXTENSIONS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html",
               ".htm": "html", ".pdf": "pdf"}
KINDS = ("text", "markdown", "html", "pdf")

Progress = Callable[[int, int], None]
"""(pages done, pages in all): called while a PDF is read."""


class DocumentError(ValueError):
    """The document cannot be read (wrong type, broken file, not text)."""


def detect_kind(name: str, content_type: str | None, data: bytes) -> str:
    """The document's kind from its declared media type, else its name, else its first bytes."""
    if content_type:
        media = content_type.split(";", 1)[0].strip().lower()
        if media in CONTENT_TYPES:
            return CONTENT_TYPES[media]
        if media in KINDS:
            return media
    kind = _EXTENSIONS.get(PurePath(name).suffix.lower())
    if kind:
        return kind
    head = data[:512].lstrip().lower()
    if head.startswith(b"%pdf-"):
        return "pdf"
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "text"


def extract_text(data: bytes, kind: str, progress: Progress | None = None) -> str:
    if kind == "pdf":
        return pdf_text(data, progress)
    text = _decode(data)
    if kind == "markdown":
        return markdown_text(text)
    if kind == "html":
        return html_text(text)
    if kind == "text":
        return text
    raise DocumentError(f"unknown document type; known: {', '.join(KINDS)}")


def _decode(data: bytes) -> str:
    if data.startswith(b"%PDF-"):
        raise DocumentError("this is a PDF: send it as application/pdf (or name it .pdf)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError("the document is not UTF-8 text") from None


_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_MD_FENCE = re.compile(r"^\s*(```|~~~)")
_MD_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_MD_SETEXT = re.compile(r"^\s*(=+|-+)\s*$")


def markdown_text(text: str) -> str:
    """Markdown without its markup: headings stay ``#`` lines, links keep their words."""
    out: list[str] = []
    for line in text.splitlines():
        if _MD_FENCE.match(line):
            continue
        if _MD_SETEXT.match(line) and out and out[-1].strip() and not out[-1].startswith("#"):
            out[-1] = ("# " if line.strip()[0] == "=" else "## ") + out[-1].strip()
            continue
        line = _MD_IMAGE.sub(r"\1", line)
        line = _MD_LINK.sub(r"\1", line)
        line = _MD_EMPHASIS.sub(r"\2", line)
        line = _MD_LIST.sub("", line)
        out.append(line.lstrip(">").rstrip() if line.startswith(">") else line.rstrip())
    return "\n".join(out)


class _HtmlText(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg"})
    _BLOCK = frozenset({"p", "div", "section", "article", "br", "li", "tr", "table", "ul", "ol", "header",
                        "footer", "main", "nav", "aside", "blockquote", "pre", "dd", "dt", "hr", "title"})
    _HEADING: ClassVar[dict[str, str]] = {"h1": "# ", "h2": "## ", "h3": "### ", "h4": "#### ", "h5": "##### ",
                                          "h6": "###### "}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._HEADING:
            self.parts.append("\n\n" + self._HEADING[tag])
        elif tag in self._BLOCK:
            self.parts.append("\n\n" if tag in ("p", "div", "section", "article", "table") else "\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._HEADING:
            self.parts.append("\n\n")
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_text(text: str) -> str:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def pdf_text(data: bytes, progress: Progress | None = None) -> str:
    """Each page's text (pypdf), pages separated by blank lines."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError("the PDF is encrypted: send an unprotected copy")
        pages = reader.pages
        total = len(pages)
        out: list[str] = []
        for i, page in enumerate(pages, 1):
            out.append(page.extract_text() or "")
            if progress is not None:
                progress(i, total)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise DocumentError(f"the PDF cannot be read ({type(exc).__name__})") from None
    return "\n\n".join(out)
