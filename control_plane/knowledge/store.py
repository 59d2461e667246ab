"""Knowledge records in the same store as the calls: one interface, a SQLite and a PostgreSQL one.

Both run over the repository's own connections (:meth:`Repository.connection` and
``transaction``), so the knowledge lives, migrates and is backed up with the call records.
They differ where the dialects do: how a list of ids is passed, how a vector is stored, and the
lexical ranking (FTS5's BM25 on SQLite, ``ts_rank`` over a GIN-indexed ``tsvector`` on
PostgreSQL). Every method that takes an organisation filters on it: another organisation's
knowledge base is simply not found.
"""

from __future__ import annotations

import abc
import asyncio
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from ..store.db import Conflict
from ..store.records import utcnow
from ..store.repository import Repository
from . import pgvector
from .models import Chunk, Document, KnowledgeBase, SearchHit
from .pgvector import PgVector

_TERM = re.compile(r"[^\W_]+")
MAX_QUERY_TERMS = 32

# Words that carry no topic in a caller's question: dropping them keeps an OR query from matching
# every chunk (and ranking on "the"), which is both slower and worse.
STOPWORDS = frozenset(["a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
                       "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
                       "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
                       "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
                       "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
                       "let", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on",
                       "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "please",
                       "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs",
                       "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to",
                       "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
                       "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
                       "yourselves", "tell", "know", "like", "want", "need", "get", "got", "okay", "ok", "hi",
                       "hello", "yes", "yeah", "um", "uh", "thanks", "thank", "much", "many", "also"])


def query_terms(text: str) -> list[str]:
    """The caller's words worth searching for: lower-case, no stop words, no repeats, at most 32."""
    seen: dict[str, None] = {}
    for word in _TERM.findall(text.lower()):
        if word not in STOPWORDS and len(seen) < MAX_QUERY_TERMS:
            seen.setdefault(word, None)
    return list(seen)


def passage_terms(text: str) -> set[str]:
    """The words a passage is counted under in ``knowledge_terms`` (split as queries are)."""
    return {w for w in _TERM.findall(text.lower()) if w not in STOPWORDS}


def term_counts(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(passage_terms(text))
    return counts


COMMON_SHARE = 0.05
"""A word in more than this share of a base's passages is left out of its queries ..."""
COMMON_MIN_PASSAGES = 200
"""... once the base has this many passages (below, every query is cheap anyway)."""


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


class KnowledgeStore(abc.ABC):
    """Knowledge bases, documents and their chunks; lexical search and stored vectors."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    # -- knowledge bases -----------------------------------------------------------------

    async def create_base(self, org_id: UUID, name: str, description: str = "") -> KnowledgeBase:
        kb = KnowledgeBase(id=uuid4(), org_id=org_id, name=name, description=description, created_at=utcnow())
        try:
            async with self.repo.transaction() as conn:
                await conn.execute(
                    "INSERT INTO knowledge_bases (id, org_id, name, description, created_at)"
                    " VALUES ($1, $2, $3, $4, $5)", kb.id, org_id, name, description, kb.created_at)
        except Exception as exc:
            if self.repo.db.is_unique_violation(exc):
                raise Conflict("this organisation already has a knowledge base of that name") from None
            raise
        return kb

    async def list_bases(self, org_id: UUID) -> list[KnowledgeBase]:
        async with self.repo.connection() as conn:
            rows = await conn.fetch(
                "SELECT b.id, b.org_id, b.name, b.description, b.created_at, count(d.id) AS documents,"
                " coalesce(sum(d.chunks), 0) AS chunks FROM knowledge_bases b"
                " LEFT JOIN knowledge_documents d ON d.kb_id = b.id WHERE b.org_id = $1"
                " GROUP BY b.id, b.org_id, b.name, b.description, b.created_at ORDER BY b.name", org_id)
        return [self._base(r) for r in rows]

    async def get_base(self, org_id: UUID, ref: str) -> KnowledgeBase | None:
        """The organisation's knowledge base whose id or name is ``ref``."""
        try:
            kb_id: UUID | None = UUID(ref)
        except ValueError:
            kb_id = None
        async with self.repo.connection() as conn:
            if kb_id is not None:
                row = await conn.fetchrow("SELECT * FROM knowledge_bases WHERE org_id = $1 AND id = $2",
                                          org_id, kb_id)
                if row is not None:
                    return self._base(row)
            row = await conn.fetchrow("SELECT * FROM knowledge_bases WHERE org_id = $1 AND name = $2", org_id, ref)
        return None if row is None else self._base(row)

    async def delete_base(self, org_id: UUID, kb_id: UUID) -> bool:
        """The base, its documents and every chunk (by cascade, index entries with them)."""
        async with self.repo.transaction() as conn:
            await self._delete_chunks(conn, "document_id IN (SELECT id FROM knowledge_documents WHERE kb_id = $1)",
                                      kb_id)
            return await conn.execute("DELETE FROM knowledge_bases WHERE org_id = $1 AND id = $2", org_id, kb_id) > 0

    async def erase_organisation(self, org_id: UUID) -> int:
        """Every knowledge base of the organisation, with its documents and chunks; how many bases."""
        async with self.repo.transaction() as conn:
            return (await self.erase_in(conn, org_id))["knowledge_bases"]

    async def erase_in(self, conn: Any, org_id: UUID) -> dict[str, int]:
        """:meth:`erase_organisation` inside the caller's transaction (the whole organisation's
        erasure): bases, documents, passages with their index entries and embeddings, word counts."""
        bases = await conn.fetch("SELECT id FROM knowledge_bases WHERE org_id = $1", org_id)
        passages = 0
        for row in bases:  # explicit rather than by cascade: SQLite's index triggers then see every row
            passages += await conn.execute(
                "DELETE FROM knowledge_chunks WHERE document_id IN (SELECT id FROM knowledge_documents"
                " WHERE kb_id = $1)", row["id"])
        documents = await conn.execute("DELETE FROM knowledge_documents WHERE org_id = $1", org_id)
        await conn.execute("DELETE FROM knowledge_bases WHERE org_id = $1", org_id)
        return {"knowledge_bases": len(bases), "knowledge_documents": documents, "knowledge_passages": passages}

    @staticmethod
    def _base(row: dict[str, Any]) -> KnowledgeBase:
        return KnowledgeBase(id=_uuid(row["id"]), org_id=_uuid(row["org_id"]), name=row["name"],
                             description=row["description"], created_at=_time(row["created_at"]),
                             documents=int(row.get("documents") or 0), chunks=int(row.get("chunks") or 0))

    # -- documents -----------------------------------------------------------------------

    async def replace_document(self, org_id: UUID, kb_id: UUID, *, name: str, content_type: str, sha256: str,
                               chars: int, chunks: Sequence[Chunk]) -> Document:
        """Store a document and its chunks in one transaction, replacing one of the same name."""
        doc = Document(id=uuid4(), kb_id=kb_id, name=name, content_type=content_type, sha256=sha256, chars=chars,
                       chunks=len(chunks), embedded=bool(chunks) and all(c.embedding is not None for c in chunks),
                       created_at=utcnow())
        column, value = await self._embedding_target(chunks)
        async with self.repo.transaction() as conn:
            old = await conn.fetchrow("SELECT id FROM knowledge_documents WHERE kb_id = $1 AND name = $2",
                                      kb_id, name)
            if old is not None:
                await self._forget_terms(conn, kb_id, old["id"])
                await self._delete_chunks(conn, "document_id = $1", old["id"])
                await conn.execute("DELETE FROM knowledge_documents WHERE id = $1", old["id"])
            await conn.execute(
                "INSERT INTO knowledge_documents (id, kb_id, org_id, name, content_type, sha256, chars, chunks,"
                " embedded, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                doc.id, kb_id, org_id, name, content_type, sha256, chars, doc.chunks, doc.embedded, doc.created_at)
            await conn.executemany(
                f"INSERT INTO knowledge_chunks (document_id, kb_id, ord, source, body, {column})"
                f" VALUES ($1, $2, $3, $4, $5, {value})",
                [(doc.id, kb_id, c.ord, name, c.text, None if c.embedding is None else self._vector(c.embedding))
                 for c in chunks])
            await self._add_terms(conn, kb_id, term_counts(c.text for c in chunks))
        return doc

    async def _embedding_target(self, chunks: Sequence[Chunk]) -> tuple[str, str]:
        """The column a passage's embedding goes to, and its value's SQL (``$6`` is the vector)."""
        return "embedding", "$6"

    async def _add_terms(self, conn: Any, kb_id: UUID, counts: Counter[str]) -> None:
        await conn.executemany(
            "INSERT INTO knowledge_terms (kb_id, term, df) VALUES ($1, $2, $3)"
            " ON CONFLICT (kb_id, term) DO UPDATE SET df = knowledge_terms.df + excluded.df",
            [(kb_id, term, n) for term, n in counts.items()])

    async def _forget_terms(self, conn: Any, kb_id: Any, document_id: Any) -> None:
        rows = await conn.fetch("SELECT body FROM knowledge_chunks WHERE document_id = $1", document_id)
        counts = term_counts(r["body"] for r in rows)
        await conn.executemany("UPDATE knowledge_terms SET df = df - $3 WHERE kb_id = $1 AND term = $2",
                               [(kb_id, term, n) for term, n in counts.items()])
        await conn.execute("DELETE FROM knowledge_terms WHERE kb_id = $1 AND df <= 0", kb_id)

    async def list_documents(self, org_id: UUID, kb_id: UUID) -> list[Document]:
        async with self.repo.connection() as conn:
            rows = await conn.fetch(
                "SELECT * FROM knowledge_documents WHERE org_id = $1 AND kb_id = $2 ORDER BY name", org_id, kb_id)
        return [Document(id=_uuid(r["id"]), kb_id=_uuid(r["kb_id"]), name=r["name"], content_type=r["content_type"],
                         sha256=r["sha256"], chars=r["chars"], chunks=r["chunks"], embedded=bool(r["embedded"]),
                         created_at=_time(r["created_at"])) for r in rows]

    async def delete_document(self, org_id: UUID, kb_id: UUID, name: str) -> bool:
        async with self.repo.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT id FROM knowledge_documents WHERE org_id = $1 AND kb_id = $2 AND name = $3",
                org_id, kb_id, name)
            if row is None:
                return False
            await self._forget_terms(conn, kb_id, row["id"])
            await self._delete_chunks(conn, "document_id = $1", row["id"])
            await conn.execute("DELETE FROM knowledge_documents WHERE id = $1", row["id"])
        return True

    async def count_chunks(self, kb_ids: Sequence[UUID]) -> int:
        if not kb_ids:
            return 0
        sql, args = self._in("SELECT count(*) AS n FROM knowledge_chunks WHERE document_id IN"
                             " (SELECT id FROM knowledge_documents WHERE kb_id {ids})", kb_ids)
        async with self.repo.connection() as conn:
            row = await conn.fetchrow(sql, *args)
        return int(row["n"]) if row else 0

    @staticmethod
    async def _delete_chunks(conn: Any, where: str, value: Any) -> None:
        # Explicit rather than left to the cascade: SQLite's index triggers then see every row.
        await conn.execute(f"DELETE FROM knowledge_chunks WHERE {where}", value)

    # -- search --------------------------------------------------------------------------

    async def search(self, kb_ids: Sequence[UUID], terms: Sequence[str], limit: int) -> list[SearchHit]:
        """The best ``limit`` chunks of these bases for any of ``terms``, best first."""
        if not kb_ids or not terms:
            return []
        async with self._searching() as conn:
            terms = await self._telling_terms(conn, kb_ids, terms)
            return await self._rank(conn, kb_ids, terms, limit)

    def _searching(self) -> AbstractAsyncContextManager[Any]:
        return self.repo.db.reading()

    async def _telling_terms(self, conn: Any, kb_ids: Sequence[UUID], terms: Sequence[str]) -> Sequence[str]:
        """``terms`` without those held by more than 5% of a large base's passages: an OR query ranks
        every passage that holds any of its words, and such a word makes that a large share of them
        while adding little to the ranking (its inverse document frequency is low). The two rarest
        words always stay."""
        kb_sql, kb_args = self._in("kb_id {ids}", kb_ids)
        term_sql, term_args = self._in("term {ids}", terms, first=len(kb_args) + 1)
        # One round trip: the bases' passage count (the row without a term), then each word's count.
        rows = await conn.fetch(
            f"SELECT NULL AS term, coalesce(sum(chunks), 0) AS df FROM knowledge_documents WHERE {kb_sql}"
            f" UNION ALL SELECT term, sum(df) AS df FROM knowledge_terms WHERE {kb_sql} AND {term_sql}"
            " GROUP BY term", *kb_args, *term_args)
        df = {r["term"]: int(r["df"]) for r in rows}
        passages = df.pop(None, 0)
        if passages < COMMON_MIN_PASSAGES:
            return terms
        by_rarity = sorted(terms, key=lambda t: df.get(t, 0))
        limit = COMMON_SHARE * passages
        return [t for i, t in enumerate(by_rarity) if i < 2 or df.get(t, 0) <= limit]

    @abc.abstractmethod
    async def _rank(self, conn: Any, kb_ids: Sequence[UUID], terms: Sequence[str], limit: int) -> list[SearchHit]:
        ...

    async def ranks_vectors(self) -> bool:
        """Whether :meth:`nearest` ranks embeddings in the database (else :meth:`vectors` gives
        them to rank in the application)."""
        return False

    async def nearest(self, kb_ids: Sequence[UUID], vector: Sequence[float], limit: int) -> list[int]:
        """Ids of the ``limit`` passages of these bases nearest ``vector``, nearest first."""
        raise NotImplementedError("this store ranks no vectors itself")

    async def vectors(self, kb_ids: Sequence[UUID]) -> list[tuple[int, Sequence[float]]]:
        """(chunk id, embedding) of every embedded chunk of these bases."""
        if not kb_ids:
            return []
        sql, args = self._in("SELECT id, embedding FROM knowledge_chunks WHERE kb_id {ids} AND embedding IS NOT NULL",
                             kb_ids)
        async with self.repo.db.reading() as conn:
            rows = await conn.fetch(sql, *args)
        return [(int(r["id"]), self._unvector(r["embedding"])) for r in rows]

    async def chunks(self, chunk_ids: Sequence[int]) -> dict[int, SearchHit]:
        if not chunk_ids:
            return {}
        sql, args = self._in("SELECT id, source, body FROM knowledge_chunks WHERE id {ids}", chunk_ids)
        async with self.repo.db.reading() as conn:
            rows = await conn.fetch(sql, *args)
        return {int(r["id"]): SearchHit(int(r["id"]), r["source"], r["body"], 0.0) for r in rows}

    # -- dialect -------------------------------------------------------------------------

    @abc.abstractmethod
    def _in(self, sql: str, values: Sequence[Any], first: int = 1) -> tuple[str, list[Any]]:
        """``sql`` with ``{ids}`` made a membership test of ``values`` (placeholders from ``$first``)."""

    @abc.abstractmethod
    def _vector(self, values: Sequence[float]) -> Any: ...

    @abc.abstractmethod
    def _unvector(self, stored: Any) -> Sequence[float]: ...


class SqliteKnowledgeStore(KnowledgeStore):
    async def erase_in(self, conn: Any, org_id: UUID) -> dict[str, int]:
        counts = await super().erase_in(conn, org_id)
        if counts["knowledge_passages"]:
            # FTS5 records a deletion as a marker in a newer segment: the words stay in the old one
            # until segments merge. Merging them all now takes the erased passages' words out.
            await conn.execute("INSERT INTO knowledge_fts (knowledge_fts) VALUES ('optimize')")
        return counts

    def _in(self, sql: str, values: Sequence[Any], first: int = 1) -> tuple[str, list[Any]]:
        marks = ", ".join(f"${i}" for i in range(first, first + len(values)))
        return sql.replace("{ids}", f"IN ({marks})"), list(values)

    def _vector(self, values: Sequence[float]) -> bytes:
        return array("f", values).tobytes()

    def _unvector(self, stored: Any) -> Sequence[float]:
        vector = array("f")
        vector.frombytes(stored)
        return vector

    async def _rank(self, conn: Any, kb_ids: Sequence[UUID], terms: Sequence[str], limit: int) -> list[SearchHit]:
        match = " OR ".join(f'"{t}"' for t in terms)  # terms are letters and digits only
        # Ids and ranks first, the passages' text after: the sort then never carries every match's body.
        sql, args = self._in(
            "SELECT c.id AS id, bm25(knowledge_fts) AS rank"
            " FROM knowledge_fts JOIN knowledge_chunks c ON c.id = knowledge_fts.rowid"
            " WHERE knowledge_fts MATCH $1 AND c.kb_id {ids} ORDER BY rank LIMIT " + str(int(limit)),
            kb_ids, first=2)
        ranked = await conn.fetch(sql, match, *args)
        if not ranked:
            return []
        sql, args = self._in("SELECT id, source, body FROM knowledge_chunks WHERE id {ids}",
                             [int(r["id"]) for r in ranked])
        text = {int(r["id"]): r for r in await conn.fetch(sql, *args)}
        return [SearchHit(int(r["id"]), text[int(r["id"])]["source"], text[int(r["id"])]["body"], -float(r["rank"]))
                for r in ranked]


class PostgresKnowledgeStore(KnowledgeStore):
    """PostgreSQL full-text search; embeddings under pgvector where the database has it
    (:mod:`.pgvector`), else ``real[]`` ranked in the application."""

    def __init__(self, repo: Repository, *, pgvector: bool = True) -> None:
        super().__init__(repo)
        self.use_pgvector = pgvector
        self._pg: PgVector | None = None
        self._pg_checked = False
        self._pg_lock = asyncio.Lock()
        self._indexed: set[int] = set()

    async def pgvector(self) -> PgVector | None:
        """pgvector, set up on first use (``None``: not in this database, not allowed, or turned off)."""
        if not self._pg_checked:
            async with self._pg_lock:
                if not self._pg_checked:
                    self._pg = await pgvector.set_up(self.repo) if self.use_pgvector else None
                    self._pg_checked = True
        return self._pg

    async def _embedding_target(self, chunks: Sequence[Chunk]) -> tuple[str, str]:
        dimensions = next((len(c.embedding) for c in chunks if c.embedding is not None), 0)
        pg = await self.pgvector() if dimensions else None
        if pg is None:
            return "embedding", "$6"  # real[]
        if dimensions not in self._indexed:
            await pgvector.ensure_index(self.repo, pg, dimensions)
            self._indexed.add(dimensions)
        return "embedding_vec", pg.cast("$6")

    async def ranks_vectors(self) -> bool:
        return await self.pgvector() is not None

    async def nearest(self, kb_ids: Sequence[UUID], vector: Sequence[float], limit: int) -> list[int]:
        pg = await self.pgvector()
        if pg is None:
            raise NotImplementedError("pgvector is not in use")
        return await pgvector.nearest(self.repo, pg, kb_ids, vector, limit)

    async def vectors(self, kb_ids: Sequence[UUID]) -> list[tuple[int, Sequence[float]]]:
        if kb_ids and self._pg is not None:  # stored as vectors: read back as real[]
            return await self._vectors_as_arrays(kb_ids)
        return await super().vectors(kb_ids)

    async def _vectors_as_arrays(self, kb_ids: Sequence[UUID]) -> list[tuple[int, Sequence[float]]]:
        async with self.repo.db.reading() as conn:
            rows = await conn.fetch("SELECT id, embedding_vec::real[] AS embedding FROM knowledge_chunks"
                                    " WHERE kb_id = ANY($1::uuid[]) AND embedding_vec IS NOT NULL", list(kb_ids))
        return [(int(r["id"]), self._unvector(r["embedding"])) for r in rows]

    async def _add_terms(self, conn: Any, kb_id: UUID, counts: Counter[str]) -> None:
        # One statement with two arrays: a row per word through executemany is a round trip each.
        await conn.execute(
            "INSERT INTO knowledge_terms (kb_id, term, df) SELECT $1, t.term, t.df"
            " FROM unnest($2::text[], $3::integer[]) AS t (term, df)"
            " ON CONFLICT (kb_id, term) DO UPDATE SET df = knowledge_terms.df + excluded.df",
            kb_id, list(counts), list(counts.values()))

    def _in(self, sql: str, values: Sequence[Any], first: int = 1) -> tuple[str, list[Any]]:
        first_value = values[0] if values else None
        kind = "bigint" if isinstance(first_value, int) else "uuid" if isinstance(first_value, UUID) else "text"
        return sql.replace("{ids}", f"= ANY(${first}::{kind}[])"), [list(values)]

    def _vector(self, values: Sequence[float]) -> list[float]:
        return list(values)

    def _unvector(self, stored: Any) -> Sequence[float]:
        return array("f", stored)

    def _searching(self) -> AbstractAsyncContextManager[Any]:
        return self.repo.transaction()  # for SET LOCAL

    async def _rank(self, conn: Any, kb_ids: Sequence[UUID], terms: Sequence[str], limit: int) -> list[SearchHit]:
        # The tsvectors are TOASTed, so the table looks small and the planner prefers to scan it,
        # detoasting every passage's tsvector to test it (tens of ms per thousand passages); it
        # does not price that. The GIN index reads only the passages that hold a query's words.
        await conn.execute("SET LOCAL enable_seqscan = off")
        # Normalisation 1: rank / (1 + log(length)), so a long chunk does not win on length alone.
        rows = await conn.fetch(
            "SELECT id, source, body, ts_rank(tsv, q, 1) AS rank"
            " FROM knowledge_chunks, to_tsquery('english', $1) q"
            " WHERE kb_id = ANY($2::uuid[]) AND tsv @@ q ORDER BY rank DESC LIMIT $3",
            " | ".join(terms), list(kb_ids), limit)
        return [SearchHit(int(r["id"]), r["source"], r["body"], float(r["rank"])) for r in rows]


def knowledge_store(repo: Repository, *, pgvector: bool = True) -> KnowledgeStore:
    if repo.dialect == "postgres":
        return PostgresKnowledgeStore(repo, pgvector=pgvector)
    if repo.dialect == "sqlite":
        return SqliteKnowledgeStore(repo)
    raise ValueError(f"no knowledge store for the {repo.dialect} dialect")
