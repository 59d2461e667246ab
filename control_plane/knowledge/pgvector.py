"""pgvector on PostgreSQL: passages' embeddings in a ``vector`` column, ranked by ``<=>`` in the
database under an HNSW index, where the database has the extension (Supabase does).

Found or set up once per store, on the first write or search that has embeddings:

1. the extension: used where it is installed (in any schema: Supabase keeps it in
   ``extensions``), else created in ``public`` when the server offers it and this role may
   (``CREATE EXTENSION`` needs that privilege); otherwise, or with ``knowledge.pgvector`` off,
   embeddings stay ``real[]`` ranked in the application, as before;
2. the column ``knowledge_chunks.embedding_vec`` (``vector``, any dimension), filled from the
   ``real[]`` column of passages stored before, which is then cleared;
3. per embedding dimension ``n`` (up to 2,000, HNSW's limit for ``vector``), a partial HNSW index
   on ``embedding_vec::vector(n)`` with ``vector_cosine_ops`` for passages of that dimension,
   so a change of embeddings model gets its own index (the pattern pgvector's README gives for
   vectors of varying dimensions). Larger vectors are ranked by ``<=>`` without an index.

The extension's objects are named with their schema (``public.vector``, ``OPERATOR(public.<=>)``),
as the store's ``search_path`` may be its own schema only. Vectors are sent as ``real[]`` and
cast, so asyncpg needs no codec for the type. The search sets ``hnsw.iterative_scan`` (0.8+) so a
filter on the passages' bases still fills the ``limit`` (the index's first candidates may be
other bases'), and ``hnsw.ef_search`` to at least the number of candidates wanted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..store.repository import Repository

log = logging.getLogger(__name__)

HNSW_MAX_DIMENSIONS = 2000
DEFAULT_EF_SEARCH = 40
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True, slots=True)
class PgVector:
    schema: str
    version: tuple[int, ...]

    @property
    def type(self) -> str:
        return f'"{self.schema}".vector'

    def cast(self, placeholder: str, dimensions: int | None = None) -> str:
        """A ``real[]`` parameter as a vector (of ``dimensions``, when given)."""
        typmod = f"({int(dimensions)})" if dimensions else ""
        return f"{placeholder}::real[]::{self.type}{typmod}"

    def index_name(self, dimensions: int) -> str:
        return f"knowledge_chunks_hnsw_{int(dimensions)}"

    def create_index_sql(self, dimensions: int) -> str:
        n = int(dimensions)
        return (f"CREATE INDEX IF NOT EXISTS {self.index_name(n)} ON knowledge_chunks USING hnsw"
                f" ((embedding_vec::{self.type}({n})) \"{self.schema}\".vector_cosine_ops)"
                f" WHERE \"{self.schema}\".vector_dims(embedding_vec) = {n}")

    def nearest_sql(self, dimensions: int) -> str:
        """Ids of the passages of bases ``$1`` nearest the vector ``$2`` by cosine distance, ``$3`` of them.
        The dimension test is the partial index's predicate, so the planner may use that index."""
        n = int(dimensions)
        return (f"SELECT id FROM knowledge_chunks WHERE kb_id = ANY($1::uuid[])"
                f" AND \"{self.schema}\".vector_dims(embedding_vec) = {n}"
                f" ORDER BY (embedding_vec::{self.type}({n})) OPERATOR(\"{self.schema}\".<=>) {self.cast('$2', n)}"
                f" LIMIT $3")

    def search_settings(self, limit: int) -> list[str]:
        settings = [f"SET LOCAL hnsw.ef_search = {max(DEFAULT_EF_SEARCH, min(int(limit), 1000))}"]
        if self.version >= (0, 8):
            settings.append("SET LOCAL hnsw.iterative_scan = strict_order")
        return settings


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


_INSTALLED = ("SELECT n.nspname AS schema, e.extversion AS version FROM pg_extension e"
              " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'")


async def _installed(repo: Repository) -> PgVector | None:
    async with repo.connection() as conn:
        row = await conn.fetchrow(_INSTALLED)
    if row is None or not _NAME.match(row["schema"]):
        return None
    return PgVector(schema=row["schema"], version=_version(row["version"]))


async def set_up(repo: Repository) -> PgVector | None:
    """The extension and the column, made ready if this database and role allow; ``None``: rank
    embeddings in the application."""
    found = await _installed(repo)
    if found is None:
        async with repo.connection() as conn:
            offered = await conn.fetchrow("SELECT 1 AS ok FROM pg_available_extensions WHERE name = 'vector'")
        if offered is None:
            log.info("pgvector is not available in this database: embeddings are ranked in the application")
            return None
        try:
            async with repo.transaction() as conn:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
        except Exception as exc:  # no privilege, no public schema, or another process created it meanwhile
            found = await _installed(repo)
            if found is None:
                log.warning("pgvector is available but cannot be created here (%s): embeddings are ranked in "
                            "the application; a database owner can run CREATE EXTENSION vector",
                            type(exc).__name__)
                return None
        found = found or await _installed(repo)
        if found is None:
            return None
    try:
        async with repo.transaction() as conn:
            column = await conn.fetchrow(
                "SELECT 1 AS ok FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = 'knowledge_chunks' AND column_name = 'embedding_vec'")
            if column is None:
                await conn.execute(f"ALTER TABLE knowledge_chunks ADD COLUMN IF NOT EXISTS embedding_vec {found.type}")
                moved = await conn.execute(
                    f"UPDATE knowledge_chunks SET embedding_vec = embedding::{found.type}, embedding = NULL"
                    " WHERE embedding IS NOT NULL")
                if moved:
                    log.info("pgvector: %d stored embeddings moved to the vector column", moved)
    except Exception as exc:  # e.g. a role that may not ALTER the table
        log.warning("pgvector is installed but the vector column cannot be added (%s): embeddings are ranked "
                    "in the application", type(exc).__name__)
        return None
    return found


async def ensure_index(repo: Repository, pg: PgVector, dimensions: int) -> None:
    """The HNSW index for vectors of ``dimensions`` (none past HNSW's limit: ``<=>`` then scans)."""
    if dimensions > HNSW_MAX_DIMENSIONS:
        return
    try:
        async with repo.transaction() as conn:
            await conn.execute(pg.create_index_sql(dimensions))
    except Exception as exc:  # two processes creating it at once: one wins, which is all that is needed
        if not repo.db.is_unique_violation(exc):
            log.warning("pgvector: no HNSW index for %d dimensions (%s): ranked without it",
                        dimensions, type(exc).__name__)


async def nearest(repo: Repository, pg: PgVector, kb_ids: Sequence[UUID], vector: Sequence[float],
                  limit: int) -> list[int]:
    async with repo.transaction() as conn:  # for SET LOCAL
        for statement in pg.search_settings(limit):
            await conn.execute(statement)
        rows: list[Any] = await conn.fetch(pg.nearest_sql(len(vector)), list(kb_ids), list(vector), limit)
    return [int(r["id"]) for r in rows]
