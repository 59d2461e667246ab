"""Retrieval quality on a document set written for the tests (tests/data/kb): 56 questions with
known answers, paraphrased rather than copied. recall@3: the answer is in one of the three
passages an agent would get. Lexical (both backends) must reach 0.9; hybrid (the embeddings
emulator's hashed bag of words, fused by reciprocal rank) is measured and must not fall apart."""

from __future__ import annotations

import json
from pathlib import Path

from bench.emulators.server import start_emulators
from control_plane.knowledge.embeddings import EmbeddingsClient
from control_plane.knowledge.service import KnowledgeService

DATA = Path(__file__).resolve().parent.parent / "data" / "kb"
QUESTIONS = json.loads((DATA / "questions.json").read_text())


async def _recall(service: KnowledgeService, repo, org_id) -> tuple[float, list[str]]:
    kb = await service.create_base(repo, org_id, "brightwater")
    for path in sorted((DATA / "docs").iterdir()):
        await service.ingest(repo, org_id, "brightwater", path.name, path.read_bytes())
    missed = []
    for item in QUESTIONS:
        hits = await service.search(repo, [kb.id], item["q"], limit=3)
        if not any(item["a"] in " ".join(h.text.split()) for h in hits):
            missed.append(item["q"])
    return 1 - len(missed) / len(QUESTIONS), missed


def test_the_question_set_is_large_enough_and_paraphrased():
    assert len(QUESTIONS) >= 50
    corpus = " ".join(" ".join(p.read_text().split()) for p in (DATA / "docs").iterdir())
    for item in QUESTIONS:
        assert item["a"] in corpus, item  # every answer is in the documents ...
        assert item["q"].rstrip("?") not in corpus  # ... and no question is copied from them


async def test_lexical_recall_at_3(settings):
    from control_plane.store import open_repository

    repo = await open_repository(settings)
    service = KnowledgeService(settings.knowledge)
    try:
        org = await repo.create_organisation("recall")
        recall, missed = await _recall(service, repo, org.id)
    finally:
        await repo.close()
    print(f"\nlexical recall@3 ({repo.dialect}): {recall:.3f}; missed: {missed}")
    assert recall >= 0.9, missed


async def test_hybrid_recall_at_3_with_emulated_embeddings(settings):
    from control_plane.store import open_repository

    emulators = await start_emulators("fast")
    repo = await open_repository(settings)
    embedder = EmbeddingsClient(emulators.llm_base_url, "emulator-embeddings", emulators.api_key)
    service = KnowledgeService(settings.knowledge, embedder=embedder)
    try:
        org = await repo.create_organisation("recall-hybrid")
        recall, missed = await _recall(service, repo, org.id)
        kb = await service.base(repo, org.id, "brightwater")
        docs = await service.store(repo).list_documents(org.id, kb.id)
        assert docs and all(d.embedded for d in docs)
        assert emulators.embeddings.requests > len(QUESTIONS)  # each question was embedded
    finally:
        await service.close()
        await repo.close()
        await emulators.close()
    print(f"\nhybrid recall@3 ({repo.dialect}): {recall:.3f}; missed: {missed}")
    assert recall >= 0.85, missed
