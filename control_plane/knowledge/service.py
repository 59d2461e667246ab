"""What the API, the CLI and the call pipeline do with knowledge bases.

Ingestion: bytes -> text (:mod:`.extract`, PDF pages in a worker thread so the event loop
keeps serving calls) -> passages (:mod:`.chunking`) -> vectors when embeddings are configured
-> one transaction replacing any document of the same name. Search: the lexical ranking of
the store, fused with the vector ranking by reciprocal rank when embeddings are configured
(vectors are ranked by PostgreSQL under an HNSW index where it has pgvector, see
:mod:`.pgvector`; else here, in Python, which is fine for bases of a few thousand embedded
chunks: SQLite has no vector index).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from uuid import UUID

from engine.conversation.knowledge import Passage

from ..store.repository import Repository
from .chunking import chunk_text
from .embeddings import EmbeddingError, EmbeddingsClient
from .extract import DocumentError, Progress, detect_kind, extract_text
from .fusion import reciprocal_rank_fusion, top_by_dot
from .models import Chunk, Document, KnowledgeBase, SearchHit
from .settings import KnowledgeSettings
from .store import KnowledgeStore, knowledge_store, query_terms

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 200


class KnowledgeError(ValueError):
    """A mistake in a knowledge request (unknown base, bad name, unreadable document)."""


def _check_name(what: str, name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise KnowledgeError(f"{what} must be 1-{MAX_NAME_CHARS} printable characters")
    return name


class KnowledgeService:
    def __init__(self, settings: KnowledgeSettings, embedder: EmbeddingsClient | None = None) -> None:
        self.settings = settings
        if embedder is None and settings.embeddings_url:
            key = settings.embeddings_api_key
            embedder = EmbeddingsClient(settings.embeddings_url, settings.embeddings_model,
                                        key.get_secret_value() if key else None)
        self.embedder = embedder
        self._stores: dict[int, KnowledgeStore] = {}

    def store(self, repo: Repository) -> KnowledgeStore:
        store = self._stores.get(id(repo))
        if store is None or store.repo is not repo:
            store = self._stores[id(repo)] = knowledge_store(repo, pgvector=self.settings.pgvector)
        return store

    async def close(self) -> None:
        if self.embedder is not None:
            await self.embedder.close()

    # -- bases ---------------------------------------------------------------------------

    async def create_base(self, repo: Repository, org_id: UUID, name: str, description: str = "") -> KnowledgeBase:
        name = _check_name("a knowledge base's name", name)
        try:
            UUID(name)
        except ValueError:
            pass
        else:
            raise KnowledgeError("a knowledge base's name must not be a UUID (agents name bases by id or name)")
        return await self.store(repo).create_base(org_id, name, description.strip()[:1000])

    async def base(self, repo: Repository, org_id: UUID, ref: str) -> KnowledgeBase:
        kb = await self.store(repo).get_base(org_id, ref)
        if kb is None:
            raise LookupError("this organisation has no such knowledge base")
        return kb

    async def resolve(self, repo: Repository, org_id: UUID, refs: Sequence[str], *,
                      strict: bool = True) -> list[UUID]:
        """The ids of the organisation's knowledge bases named (by id or name) in an agent config;
        ``strict``: one that is not the organisation's is an error (else it is left out)."""
        ids: list[UUID] = []
        missing = 0
        for ref in refs:
            kb = await self.store(repo).get_base(org_id, ref)
            if kb is None:
                missing += 1
            elif kb.id not in ids:
                ids.append(kb.id)
        if missing and strict:
            raise KnowledgeError(f"{missing} of the agent's knowledge_bases are not this organisation's")
        if missing:
            log.warning("org %s: %d of an agent's knowledge bases no longer exist", org_id, missing)
        return ids

    # -- documents -----------------------------------------------------------------------

    async def ingest(self, repo: Repository, org_id: UUID, kb_ref: str, name: str, data: bytes, *,
                     content_type: str | None = None, progress: Progress | None = None) -> Document:
        """Add a document, replacing the one of the same name in that base."""
        name = _check_name("a document's name", name)
        kb = await self.base(repo, org_id, kb_ref)
        if len(data) > self.settings.max_document_bytes:
            raise KnowledgeError(f"the document is larger than {self.settings.max_document_bytes} bytes")
        kind = detect_kind(name, content_type, data)
        try:
            text = await asyncio.to_thread(extract_text, data, kind, progress)
        except DocumentError as exc:
            raise KnowledgeError(str(exc)) from None
        pieces = chunk_text(text)
        if not pieces:
            raise KnowledgeError("the document has no text to search (a scanned PDF needs OCR first)")
        vectors: list[tuple[float, ...]] | list[None] = [None] * len(pieces)
        if self.embedder is not None:
            try:
                vectors = await self.embedder.embed(pieces)
            except EmbeddingError as exc:  # lexical search still works: keep the document
                log.warning("document stored without embeddings: %s", exc)
        chunks = [Chunk(ord=i, text=piece, embedding=vector)
                  for i, (piece, vector) in enumerate(zip(pieces, vectors, strict=False))]
        return await self.store(repo).replace_document(
            org_id, kb.id, name=name, content_type=kind, sha256=hashlib.sha256(data).hexdigest(), chars=len(text),
            chunks=chunks)

    # -- search --------------------------------------------------------------------------

    async def search(self, repo: Repository, kb_ids: Sequence[UUID], query: str, *,
                     limit: int | None = None, hybrid: bool = True) -> list[SearchHit]:
        limit = limit or self.settings.passages
        store = self.store(repo)
        terms = query_terms(query)
        if self.embedder is None or not hybrid:
            return await store.search(kb_ids, terms, limit)
        candidates = self.settings.candidates
        lexical, vector_ids = await asyncio.gather(
            store.search(kb_ids, terms, candidates), self._vector_ranking(store, kb_ids, query, candidates))
        if not vector_ids:
            return lexical[:limit]
        fused = reciprocal_rank_fusion([h.chunk_id for h in lexical], vector_ids)[:limit]
        known = {h.chunk_id: h for h in lexical}
        missing = [cid for cid, _ in fused if cid not in known]
        known.update(await store.chunks(missing))
        return [SearchHit(cid, known[cid].source, known[cid].text, score) for cid, score in fused if cid in known]

    async def _vector_ranking(self, store: KnowledgeStore, kb_ids: Sequence[UUID], query: str,
                              limit: int) -> list[int]:
        assert self.embedder is not None
        try:
            if await store.ranks_vectors():  # pgvector: the database ranks them under its index
                (vector,) = await self.embedder.embed([query])
                return await store.nearest(kb_ids, vector, limit)
            (vector,), stored = await asyncio.gather(self.embedder.embed([query]), store.vectors(kb_ids))
        except EmbeddingError as exc:  # lexical ranking alone, this once
            log.warning("query not embedded: %s", exc)
            return []
        return top_by_dot(vector, stored, limit)

    def retriever(self, repo: Repository, kb_ids: Sequence[UUID]) -> Retriever:
        return Retriever(self, repo, tuple(kb_ids))


class Retriever:
    """The engine's ``KnowledgeRetriever`` for one call: the bases its agent config attaches."""

    __slots__ = ("service", "repo", "kb_ids", "passages", "deadline_s")

    def __init__(self, service: KnowledgeService, repo: Repository, kb_ids: tuple[UUID, ...]) -> None:
        self.service = service
        self.repo = repo
        self.kb_ids = kb_ids
        self.passages = service.settings.passages
        self.deadline_s = service.settings.search_deadline_ms / 1000

    async def search(self, query: str, *, limit: int) -> list[Passage]:
        hits = await self.service.search(self.repo, self.kb_ids, query, limit=limit)
        return [Passage(source=h.source, text=h.text, score=h.score) for h in hits]
