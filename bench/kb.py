"""Knowledge-base benchmark: retrieval latency on a 10,000-passage base, and a 300-page PDF ingest.

    callagent bench kb [--kb-chunks 10000] [--kb-backend sqlite|postgres|both] [--json PATH]
    python -m bench.kb ... [--kb-vectors]

The base is ~50 MB of text (passages of ~5,000 characters, the size the issue sets: larger
than the agent's own ~700, so the harder case), documents of 100 passages each on a subject of
their own (see :class:`Corpus`). Queries are question words and 2-4 subject words of one
passage; document recall@3 says how often a passage of its document came back (the subject's
words are shared by the document's passages, so which of them ranks first is a toss-up). Each query is timed through
the same call an agent's turn makes (:meth:`KnowledgeService.search`), lexical only. PostgreSQL
is the one of ``DATABASE_URL`` (else ``CALLAGENT_TEST_DATABASE_URL``), in a schema made for the
run and dropped after.

``--kb-vectors`` (``python -m bench.kb``) times the vector half of a hybrid search instead: the
passages embedded (the embeddings emulator's 256-dimension vectors, computed in process) and
each query's 20 nearest found, on PostgreSQL by pgvector under its HNSW index and by the
application over ``real[]`` (``knowledge.pgvector`` off), and on SQLite by the application.
Embedding the query is left out (it is the embeddings API's time, not the store's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from control_plane.crypto import generate_key
from control_plane.knowledge.fusion import top_by_dot
from control_plane.knowledge.models import Chunk
from control_plane.knowledge.service import KnowledgeService
from control_plane.knowledge.store import STOPWORDS
from control_plane.settings import Settings
from control_plane.store import open_repository

from .emulators.embeddings import embed
from .pdfgen import make_pdf

PASSAGE_CHARS = 5_000
PASSAGES_PER_DOCUMENT = 100
QUERIES = 300
VECTOR_QUERIES = 100  # the application's ranking of 10,000 vectors takes most of a second each
PDF_PAGES = 300
_QUESTION = ["what", "is", "the", "how", "do", "i", "can", "you", "tell", "me", "about", "my", "when", "does"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    return sorted(words)


def _zipf(n: int) -> list[float]:
    return [1.0 / (rank + 1) for rank in range(n)]


class Corpus:
    """Passages as a business's documents read: each document has a subject (a few hundred words of
    its own, e.g. a product's parts and terms) mixed 40/60 with general language, whose most frequent
    words are the stop words, as in English. A question names its subject's words."""

    def __init__(self, rng: random.Random, passages: int) -> None:
        words = vocabulary(rng, 45_000)
        general, topical = sorted(STOPWORDS) + words[:5_000], words[5_000:]
        rng.shuffle(topical)
        general_w = _zipf(len(general))
        self.texts: list[str] = []
        self.topics: list[list[str]] = []
        per_passage = PASSAGE_CHARS // 7
        for d in range(0, passages, PASSAGES_PER_DOCUMENT):
            topic = rng.sample(topical, 400)
            topic_w = _zipf(len(topic))
            for _ in range(min(PASSAGES_PER_DOCUMENT, passages - d)):
                n_topic = int(per_passage * 0.4)
                drawn = (rng.choices(general, general_w, k=per_passage - n_topic)
                         + rng.choices(topic, topic_w, k=n_topic))
                rng.shuffle(drawn)
                self.texts.append(" ".join(drawn)[:PASSAGE_CHARS])
                self.topics.append(topic)

    def queries(self, rng: random.Random, count: int) -> list[tuple[int, str]]:
        """(passage index, question): question words and 2-4 subject words the passage holds."""
        out = []
        for _ in range(count):
            index = rng.randrange(len(self.texts))
            held = set(self.texts[index].split())
            subject = [w for w in self.topics[index] if w in held]
            picked = rng.sample(subject, min(len(subject), rng.randint(2, 4)))
            out.append((index, " ".join(rng.sample(_QUESTION, 3) + picked)))
        return out


async def build_base(settings: Settings, org_id: Any, name: str, passages: int) -> Corpus:
    """A knowledge base of ``passages`` generated passages for an organisation (``callagent bench
    --knowledge N`` attaches one to every call)."""
    corpus = Corpus(random.Random(20), passages)
    service = KnowledgeService(settings.knowledge.model_copy(update={"embeddings_url": None}))
    repo = await open_repository(settings)
    try:
        kb = await service.create_base(repo, org_id, name)
        await _load(service, repo, org_id, kb.id, corpus.texts)
    finally:
        await repo.close()
    return corpus


def _doc_name(passage_index: int) -> str:
    return f"doc-{passage_index // PASSAGES_PER_DOCUMENT:04d}.txt"


async def _load(service: KnowledgeService, repo: Any, org_id: Any, kb_id: Any, texts: list[str]) -> None:
    store = service.store(repo)
    for d in range(0, len(texts), PASSAGES_PER_DOCUMENT):
        batch = texts[d:d + PASSAGES_PER_DOCUMENT]
        await store.replace_document(org_id, kb_id, name=_doc_name(d),
                                     content_type="text", sha256="-", chars=sum(map(len, batch)),
                                     chunks=[Chunk(ord=i, text=t) for i, t in enumerate(batch)])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _measure(settings: Settings, chunks: int, label: str) -> dict[str, Any]:
    rng = random.Random(20)
    corpus = Corpus(rng, chunks)
    texts = corpus.texts
    service = KnowledgeService(settings.knowledge.model_copy(update={"embeddings_url": None}))
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation(f"kb-bench-{secrets.token_hex(3)}")
        kb = await service.create_base(repo, org.id, "bench")
        started = time.perf_counter()
        await _load(service, repo, org.id, kb.id, texts)
        load_s = time.perf_counter() - started
        print(f"{label}: {chunks} passages ({sum(map(len, texts)) / 1e6:.0f} MB) stored in {load_s:.1f} s",
              file=sys.stderr)
        if repo.dialect == "postgres":  # statistics, as autovacuum would have gathered them by now
            async with repo.connection() as conn:
                await conn.execute("ANALYZE knowledge_chunks")
        asked = corpus.queries(rng, QUERIES)
        for _, q in asked[:20]:  # warm the caches, as a serving process's are
            await service.search(repo, [kb.id], q)
        timings, found = [], 0
        for index, q in asked:
            t0 = time.perf_counter()
            hits = await service.search(repo, [kb.id], q)
            timings.append((time.perf_counter() - t0) * 1000)
            found += any(h.source == _doc_name(index) for h in hits)
        pdf = make_pdf([[f"Section {p}.{line}: " + " ".join(rng.choices(texts[p % len(texts)].split(), k=12))
                         for line in range(45)] for p in range(PDF_PAGES)])
        t0 = time.perf_counter()
        doc = await service.ingest(repo, org.id, "bench", "manual.pdf", pdf, content_type="application/pdf")
        pdf_s = time.perf_counter() - t0
        await service.store(repo).erase_organisation(org.id)
    finally:
        await repo.close()
        await service.close()
    return {
        "backend": label, "passages": chunks, "megabytes": round(sum(map(len, texts)) / 1e6, 1),
        "load_s": round(load_s, 1), "queries": len(timings), "document_recall_at_3": round(found / len(timings), 3),
        "search_ms": {"p50": round(statistics.median(timings), 2), "p95": round(_pct(timings, 95), 2),
                      "p99": round(_pct(timings, 99), 2), "max": round(max(timings), 2)},
        "pdf": {"pages": PDF_PAGES, "bytes": len(pdf), "passages": doc.chunks, "ingest_s": round(pdf_s, 2)},
    }


async def _measure_vectors(settings: Settings, chunks: int, label: str) -> dict[str, Any]:
    rng = random.Random(20)
    corpus = Corpus(rng, chunks)
    vectors = [tuple(embed(t)) for t in corpus.texts]
    service = KnowledgeService(settings.knowledge.model_copy(update={"embeddings_url": None}))
    repo = await open_repository(settings)
    try:
        org = await repo.create_organisation(f"kb-vectors-{secrets.token_hex(3)}")
        kb = await service.create_base(repo, org.id, "bench")
        store = service.store(repo)
        for d in range(0, chunks, PASSAGES_PER_DOCUMENT):
            batch = range(d, min(chunks, d + PASSAGES_PER_DOCUMENT))
            await store.replace_document(org.id, kb.id, name=_doc_name(d), content_type="text", sha256="-", chars=1,
                                         chunks=[Chunk(ord=i - d, text=corpus.texts[i], embedding=vectors[i])
                                                 for i in batch])
        if repo.dialect == "postgres":
            async with repo.connection() as conn:
                await conn.execute("ANALYZE knowledge_chunks")
        in_db = await store.ranks_vectors()
        asked = [embed(q) for _, q in corpus.queries(rng, VECTOR_QUERIES)]
        candidates = settings.knowledge.candidates

        async def rank(query: list[float]) -> list[int]:
            if in_db:
                return await store.nearest([kb.id], query, candidates)
            return top_by_dot(query, await store.vectors([kb.id]), candidates)

        for query in asked[:20]:
            await rank(query)
        timings = []
        for query in asked:
            t0 = time.perf_counter()
            await rank(query)
            timings.append((time.perf_counter() - t0) * 1000)
        await store.erase_organisation(org.id)
    finally:
        await repo.close()
        await service.close()
    return {"backend": label, "passages": chunks, "ranked_by": "pgvector (HNSW)" if in_db else "application",
            "vector_ms": {"p50": round(statistics.median(timings), 2), "p95": round(_pct(timings, 95), 2)}}


async def run_vector_bench(*, chunks: int, backend: str) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        if backend in ("sqlite", "both"):
            results.append(await _measure_vectors(_settings(Path(tmp) / "sqlite"), chunks, "sqlite"))
        if backend in ("postgres", "both"):
            for on in (True, False):
                async with _postgres_settings(Path(tmp) / "pg") as settings:
                    settings = settings.model_copy(update={"knowledge": settings.knowledge.model_copy(
                        update={"pgvector": on})})
                    results.append(await _measure_vectors(settings, chunks, "postgres"))
    for r in results:
        print(f"{r['backend']:9} {r['passages']} embedded passages, ranked by {r['ranked_by']}: "
              f"20 nearest in p50 {r['vector_ms']['p50']} ms, p95 {r['vector_ms']['p95']} ms")
    return 0


@contextlib.asynccontextmanager
async def _postgres_settings(data_dir: Path) -> AsyncIterator[Settings]:
    """Settings on a PostgreSQL schema of the bench's own, dropped when the block ends."""
    url = os.environ.get("DATABASE_URL") or os.environ.get("CALLAGENT_DATABASE_URL") or os.environ.get(
        "CALLAGENT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = "kb_bench_" + secrets.token_hex(4)
    await _admin(url, f'CREATE SCHEMA "{schema}"')
    try:
        yield _settings(data_dir, database_url=url, store={"schema_name": schema})
    finally:
        await _admin(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _settings(data_dir: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, encryption_key=generate_key(), lookup_hash_key=generate_key(),
                    redis_url=None, **{"database_url": None, **values})


async def run_kb_bench(*, chunks: int = 10_000, backend: str = "both", json_path: str | None = None) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        if backend in ("sqlite", "both"):
            results.append(await _measure(_settings(Path(tmp) / "sqlite"), chunks, "sqlite"))
        if backend in ("postgres", "both"):
            async with _postgres_settings(Path(tmp) / "pg") as settings:
                results.append(await _measure(settings, chunks, "postgres"))
    for r in results:
        s = r["search_ms"]
        print(f"{r['backend']:9} {r['passages']} passages ({r['megabytes']} MB): search p50 {s['p50']} ms, "
              f"p95 {s['p95']} ms, p99 {s['p99']} ms; document recall@3 {r['document_recall_at_3']}; "
              f"{r['pdf']['pages']}-page PDF ingested in {r['pdf']['ingest_s']} s ({r['pdf']['passages']} passages)")
    if json_path:
        Path(json_path).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    ok = all(r["search_ms"]["p95"] <= 15 and r["pdf"]["ingest_s"] < 30 for r in results)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kb", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb-chunks", type=int, default=10_000)
    parser.add_argument("--kb-backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json")
    parser.add_argument("--kb-vectors", action="store_true", help="time the vector ranking instead (see above)")
    args = parser.parse_args(argv)
    if args.kb_vectors:
        return asyncio.run(run_vector_bench(chunks=args.kb_chunks, backend=args.kb_backend))
    return asyncio.run(run_kb_bench(chunks=args.kb_chunks, backend=args.kb_backend, json_path=args.json))


if __name__ == "__main__":
    sys.exit(main())
