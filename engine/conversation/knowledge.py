"""Knowledge retrieval inside the turn: the port, the prompt, and the per-call prefetch.

The engine does not know where an organisation's documents live: the composition root
hands a :class:`KnowledgeRetriever` to each call (the control plane's searches the store).
:class:`TurnKnowledge` starts a search on the tentative end of turn, the signal that also
starts speculation, so it runs while the recogniser finishes the transcript; the reply's
LLM request then takes the passages (waiting for them only if they are still coming) as
a system message just before the caller's words. The model can search again through the
``search_knowledge`` tool.

Passages are context for one request, not history: the next turn searches afresh.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ..timeline import TurnTimeline

log = logging.getLogger(__name__)

SEARCH_TOOL_NAME = "search_knowledge"

SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": SEARCH_TOOL_NAME,
        "description": "Search the organisation's documents (policies, prices, hours, products) when the "
                       "passages you were given do not answer the caller.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for, in a few words."}},
            "required": ["query"],
        },
    },
}

KNOWLEDGE_INSTRUCTION = (
    "Answer from these passages of the organisation's documents when they are relevant; they are "
    "the only facts you know about the organisation. If they do not contain the answer, say you "
    "don't know, do not guess, and offer to find out or transfer the caller."
)
NO_KNOWLEDGE_INSTRUCTION = (
    "The organisation's documents were searched and nothing relevant was found. If the caller asks "
    "about the organisation's facts (prices, policies, hours, products), say you don't know; never "
    "invent an answer. Offer to find out or to transfer the caller."
)

MAX_PASSAGE_CHARS = 1200
"""Each passage as the model sees it: phone replies are short, and every character is prompt."""


@dataclass(frozen=True, slots=True)
class Passage:
    source: str
    """The document's name (what the agent can cite)."""
    text: str
    score: float = 0.0


class KnowledgeRetriever(Protocol):
    """Where a call's passages come from. It may also carry ``passages`` (how many per request)
    and ``deadline_s`` (how long a reply waits for them); :class:`TurnKnowledge` defaults them."""

    async def search(self, query: str, *, limit: int) -> Sequence[Passage]:
        """The best ``limit`` passages for ``query``, best first; empty when nothing matches."""
        ...


_WORDS = re.compile(r"\w+")


def query_key(text: str) -> str:
    """Queries that differ only in case and punctuation find the same passages."""
    return " ".join(_WORDS.findall(text.lower()))


def context_message(passages: Sequence[Passage]) -> dict[str, Any]:
    """The system message carrying the passages (or, with none, the no-knowledge instruction)."""
    if not passages:
        return {"role": "system", "content": NO_KNOWLEDGE_INSTRUCTION}
    lines = [KNOWLEDGE_INSTRUCTION]
    for i, passage in enumerate(passages, 1):
        text = passage.text if len(passage.text) <= MAX_PASSAGE_CHARS else passage.text[:MAX_PASSAGE_CHARS] + " …"
        lines.append(f"[{i}] (source: {passage.source}) {text}")
    return {"role": "system", "content": "\n".join(lines)}


def tool_result(passages: Sequence[Passage]) -> str:
    if not passages:
        return "no relevant passages found: tell the caller you don't know"
    return "\n".join(f"[{i}] (source: {p.source}) {p.text[:MAX_PASSAGE_CHARS]}" for i, p in enumerate(passages, 1))


class TurnKnowledge:
    """One call's retrieval: prefetch on the tentative end, passages for the reply's request."""

    __slots__ = ("retriever", "limit", "deadline_s", "_pending", "_loop")

    def __init__(self, retriever: KnowledgeRetriever, *, limit: int | None = None,
                 deadline_s: float | None = None) -> None:
        self.retriever = retriever
        self.limit: int = limit if limit is not None else getattr(retriever, "passages", 3)
        self.deadline_s: float = deadline_s if deadline_s is not None else getattr(retriever, "deadline_s", 1.0)
        # query key -> its search: the tentative end's and the reply's (usually the same text).
        self._pending: dict[str, asyncio.Task[Sequence[Passage]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def prefetch(self, text: str, timeline: TurnTimeline | None) -> None:
        """Start searching for ``text`` (the transcript so far) unless that search is under way."""
        key = query_key(text)
        if key and key not in self._pending:
            self._start(key, text, timeline)

    def _start(self, key: str, text: str, timeline: TurnTimeline | None) -> asyncio.Task[Sequence[Passage]]:
        loop = self._loop = self._loop or asyncio.get_running_loop()
        # Two searches at most are kept: the one before the STT final and the one after it.
        while len(self._pending) >= 2:
            old = self._pending.pop(next(iter(self._pending)))
            if not old.done():
                old.cancel()
        task = loop.create_task(self._search(text, timeline))
        self._pending[key] = task
        return task

    async def _search(self, text: str, timeline: TurnTimeline | None) -> Sequence[Passage]:
        loop = asyncio.get_running_loop()
        if timeline is not None:
            timeline.stamp("retrieval_start", loop.time(), overwrite=True)
        try:
            return await self.retriever.search(text, limit=self.limit)
        finally:
            if timeline is not None:
                timeline.stamp("retrieval_end", loop.time(), overwrite=True)

    async def passages_for(self, text: str, timeline: TurnTimeline | None) -> Sequence[Passage]:
        """The passages for the reply to ``text``: the prefetched search when it was for the same
        words, else a new one. A failed or late search gives no passages (the call goes on)."""
        key = query_key(text)
        if not key:
            return ()
        task = self._pending.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._start(key, text, timeline)
        elif timeline is not None:
            self._restamp(task, timeline)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.deadline_s)
        except asyncio.CancelledError:
            if task.cancelled():
                return ()
            raise
        except Exception as exc:  # the store or the embeddings endpoint failing must not cost the turn
            log.warning("knowledge search failed: %s", exc)
            return ()

    @staticmethod
    def _restamp(task: asyncio.Task[Sequence[Passage]], timeline: TurnTimeline) -> None:
        # A prefetch started before this turn's timeline existed (or for a turn that merged into
        # this one) is still the search this reply uses: its time belongs on this timeline.
        if timeline.retrieval_start is None:
            timeline.stamp("retrieval_start", asyncio.get_running_loop().time())

    async def augment(self, messages: list[dict[str, Any]], text: str,
                      timeline: TurnTimeline | None) -> list[dict[str, Any]]:
        """``messages`` (ending with the caller's words) with the passages just before those words."""
        passages = await self.passages_for(text, timeline)
        if timeline is not None and timeline.retrieval_end is None:
            timeline.stamp("retrieval_end", asyncio.get_running_loop().time())
        return [*messages[:-1], context_message(passages), messages[-1]]

    async def run_tool(self, arguments: str) -> str:
        """The ``search_knowledge`` tool: the model's own query."""
        try:
            query = orjson.loads(arguments or "{}").get("query")
        except (orjson.JSONDecodeError, AttributeError):
            query = None
        if not isinstance(query, str) or not query_key(query):
            return "error: search_knowledge needs a query"
        try:
            passages = await asyncio.wait_for(self.retriever.search(query, limit=self.limit), self.deadline_s)
        except Exception as exc:
            log.warning("knowledge search failed: %s", exc)
            return "error: the documents could not be searched just now; tell the caller you will follow up"
        return tool_result(passages)

    def close(self) -> None:
        for task in self._pending.values():
            if not task.done():
                task.cancel()
        self._pending.clear()
