"""pgvector on PostgreSQL (the extension is built from third_party/pgvector by scripts/pgvector):
embeddings stored in a vector column under an HNSW index and ranked by ``<=>`` in the database,
ranked as the application would rank them; the ``real[]`` storage where the extension is turned
off or this role may not create it; embeddings stored before moved over when it arrives."""

from __future__ import annotations

import logging
import math
import random
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from bench.emulators.embeddings import DIMENSIONS, embed
from control_plane.knowledge.fusion import top_by_dot
from control_plane.knowledge.models import Chunk
from control_plane.knowledge.pgvector import PgVector
from control_plane.knowledge.service import KnowledgeService
from control_plane.knowledge.store import PostgresKnowledgeStore
from control_plane.store import open_repository

from .conftest import PG_URL, make_settings

TOPICS = ["opening hours on saturdays", "kettle warranty two years", "returns within thirty days",
          "parking behind the flagship store", "gift card refunds", "engraved items are final sale",
          "water filter cartridges", "delivery on mondays", "loyalty points expire", "price match policy"]


class StubEmbedder:
    """The embeddings emulator's vectors, without its HTTP server."""

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        self.calls += 1
        return [tuple(embed(t)) for t in texts]

    async def close(self) -> None:
        pass


def _scores(query: Sequence[float], arrays: Sequence[tuple[int, Sequence[float]]], ids: Sequence[int]) -> list[float]:
    """The cosine of each of ``ids`` to ``query``, in their order (rankings equal up to ties)."""
    by_id = dict(arrays)
    return [round(sum(a * b for a, b in zip(query, by_id[i], strict=True)), 5) for i in ids]


def _near(vector: Sequence[float], rng: random.Random) -> tuple[float, ...]:
    """A unit vector close to ``vector`` (cosine about 0.99), each one different."""
    noisy = [v + rng.gauss(0.0, 0.01) for v in vector]
    norm = math.sqrt(sum(v * v for v in noisy))
    return tuple(v / norm for v in noisy)


async def _admin(*statements: str, database: str | None = None) -> None:
    url = PG_URL if database is None else PG_URL.rsplit("/", 1)[0] + "/" + database
    conn = await asyncpg.connect(url, timeout=5)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    schema = "kb_pgv_" + secrets.token_hex(5)
    await _admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        await _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@asynccontextmanager
async def _knowledge(settings: Any) -> AsyncIterator[tuple[Any, KnowledgeService]]:
    """The repository and a knowledge service with the stub embedder, closed after the block."""
    repo = await open_repository(settings)
    service = KnowledgeService(settings.knowledge, embedder=StubEmbedder())  # type: ignore[arg-type]
    try:
        yield repo, service
    finally:
        await service.close()
        await repo.close()


async def _stored(repo: Any) -> tuple[int, int]:
    """Passages whose embedding is in the vector column, and in the real[] one."""
    async with repo.connection() as conn:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE embedding_vec IS NOT NULL) AS vec,"
            " count(*) FILTER (WHERE embedding IS NOT NULL) AS arr FROM knowledge_chunks")
    return row["vec"], row["arr"]


async def _fill(service: KnowledgeService, repo: Any, name: str = "shop") -> tuple[Any, Any]:
    org = await repo.create_organisation(name)
    kb = await service.create_base(repo, org.id, "faq")
    for i, topic in enumerate(TOPICS):
        await service.ingest(repo, org.id, "faq", f"doc{i}.txt", f"All about {topic}.".encode(),
                             content_type="text/plain")
    return org, kb


async def test_embeddings_are_ranked_in_the_database_under_an_hnsw_index(tmp_path: Path):
    async with fresh_schema() as schema:
        settings = make_settings(tmp_path, backend="postgres", pg_schema=schema)
        async with _knowledge(settings) as (repo, service):
            org, kb = await _fill(service, repo)
            store = service.store(repo)
            assert isinstance(store, PostgresKnowledgeStore) and await store.ranks_vectors()
            pg = await store.pgvector()
            assert pg is not None and pg.version >= (0, 8)
            async with repo.connection() as conn:
                index = await conn.fetchrow("SELECT indexdef FROM pg_indexes WHERE schemaname = $1"
                                            " AND indexname = $2", schema, pg.index_name(DIMENSIONS))
            assert await _stored(repo) == (len(TOPICS), 0)  # stored once, as vectors
            assert index is not None and "USING hnsw" in index["indexdef"]
            assert "vector_cosine_ops" in index["indexdef"]
            # The search's query can use that index (the dimension test is its predicate).
            async with repo.transaction() as conn:
                await conn.execute("SET LOCAL enable_seqscan = off")
                plan = "\n".join(r["QUERY PLAN"] for r in await conn.fetch(
                    "EXPLAIN " + pg.nearest_sql(DIMENSIONS), [kb.id], embed("saturday hours"), 3))
            assert pg.index_name(DIMENSIONS) in plan, plan
            # The database's ranking is the application's (cosine of unit vectors = dot product).
            arrays = await store.vectors([kb.id])
            assert len(arrays) == len(TOPICS)
            for question in ("when do you open on saturday", "can I get my gift card refunded", "kettle warranty"):
                query = embed(question)
                assert _scores(query, arrays, await store.nearest([kb.id], query, 5)) == \
                    _scores(query, arrays, top_by_dot(query, arrays, 5))
            hits = await service.search(repo, [kb.id], "what are your saturday opening hours?")
            assert hits[0].source == "doc0.txt"
            # Deleting a document takes its vectors with it.
            await store.delete_document(org.id, kb.id, "doc0.txt")
            assert len(await store.vectors([kb.id])) == len(TOPICS) - 1


async def test_a_bases_filter_still_fills_the_limit_under_the_index(tmp_path: Path):
    """Another base's passages nearer the query than all of this base's: the HNSW scan's first
    candidates are all theirs, and the iterative scan keeps going until the limit is filled."""
    async with fresh_schema() as schema:
        settings = make_settings(tmp_path, backend="postgres", pg_schema=schema)
        async with _knowledge(settings) as (repo, service):
            org, kb = await _fill(service, repo)
            store = service.store(repo)
            other = await service.create_base(repo, org.id, "crowd")
            query = embed("opening hours on saturdays")
            rng = random.Random(7)
            crowd = [Chunk(ord=i, text=f"crowd {i}", embedding=_near(query, rng)) for i in range(400)]
            await store.replace_document(org.id, other.id, name="crowd.txt", content_type="text", sha256="-",
                                         chars=1, chunks=crowd)
            pg = await store.pgvector()
            assert pg is not None
            async with repo.transaction() as conn:
                await conn.execute("SET LOCAL enable_seqscan = off")  # the index, as on a large table
                for statement in pg.search_settings(5):
                    await conn.execute(statement)
                plan = "\n".join(r["QUERY PLAN"] for r in await conn.fetch(
                    "EXPLAIN " + pg.nearest_sql(DIMENSIONS), [kb.id], query, 5))
                rows = await conn.fetch(pg.nearest_sql(DIMENSIONS), [kb.id], query, 5)
            assert pg.index_name(DIMENSIONS) in plan
            ours = {cid for cid, _ in await store.vectors([kb.id])}
            assert len(rows) == 5 and {int(r["id"]) for r in rows} <= ours


async def test_turned_off_it_keeps_real_arrays_and_ranks_in_the_application(tmp_path: Path):
    async with fresh_schema() as schema:
        settings = make_settings(tmp_path, backend="postgres", pg_schema=schema, knowledge={"pgvector": False})
        async with _knowledge(settings) as (repo, service):
            _, kb = await _fill(service, repo)
            store = service.store(repo)
            assert not await store.ranks_vectors()
            async with repo.connection() as conn:
                column = await conn.fetchrow(
                    "SELECT 1 AS ok FROM information_schema.columns WHERE table_schema = $1"
                    " AND table_name = 'knowledge_chunks' AND column_name = 'embedding_vec'", schema)
            assert column is None
            assert len(await store.vectors([kb.id])) == len(TOPICS)
            hits = await service.search(repo, [kb.id], "what are your saturday opening hours?")
            assert hits[0].source == "doc0.txt"

            # Turned on later: the embeddings stored as real[] move to the vector column.
            later = KnowledgeService(settings.knowledge.model_copy(update={"pgvector": True}),
                                     embedder=StubEmbedder())  # type: ignore[arg-type]
            moved = later.store(repo)
            assert await moved.ranks_vectors()
            assert await _stored(repo) == (len(TOPICS), 0)
            query = embed("gift card refund")
            arrays = await moved.vectors([kb.id])
            assert _scores(query, arrays, await moved.nearest([kb.id], query, 3)) == \
                _scores(query, arrays, top_by_dot(query, arrays, 3))
            assert (await later.search(repo, [kb.id], "gift card refund"))[0].source == "doc4.txt"


async def test_a_role_that_may_not_create_the_extension_keeps_real_arrays(tmp_path: Path, caplog):
    """pgvector is offered by the server but is not a trusted extension: an ordinary role cannot
    create it, so its store keeps the real[] storage, with a warning saying who can."""
    suffix = secrets.token_hex(4)
    role, database = f"kb_role_{suffix}", f"kb_db_{suffix}"
    await _admin(f"CREATE ROLE {role} LOGIN", f"CREATE DATABASE {database} OWNER {role}")
    try:
        url = PG_URL.split("://", 1)[0] + f"://{role}@" + PG_URL.split("@", 1)[1].rsplit("/", 1)[0] + f"/{database}"
        settings = make_settings(tmp_path, database_url=url, store={"pool_min_size": 1, "pool_max_size": 2})
        async with _knowledge(settings) as (repo, service):
            with caplog.at_level(logging.WARNING, logger="control_plane.knowledge.pgvector"):
                _, kb = await _fill(service, repo)
                store = service.store(repo)
                assert not await store.ranks_vectors()
            assert any("cannot be created here" in r.getMessage() for r in caplog.records)
            assert len(await store.vectors([kb.id])) == len(TOPICS)
            hits = await service.search(repo, [kb.id], "what are your saturday opening hours?")
            assert hits[0].source == "doc0.txt"
    finally:
        await _admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", f"DROP ROLE IF EXISTS {role}")


def test_the_sql_names_the_extensions_schema() -> None:
    pg = PgVector(schema="extensions", version=(0, 7, 4))
    sql = pg.nearest_sql(1536)
    assert '"extensions".vector(1536)' in sql and 'OPERATOR("extensions".<=>)' in sql
    assert '"extensions".vector_dims(embedding_vec) = 1536' in pg.create_index_sql(1536)
    assert not any("iterative_scan" in s for s in pg.search_settings(20))  # before 0.8 there is none
    assert any("iterative_scan" in s for s in PgVector("public", (0, 8, 6)).search_settings(20))

