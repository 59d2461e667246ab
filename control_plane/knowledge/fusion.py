"""Reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): score(d) = sum 1 / (k + rank).

It combines rankings whose scores are not comparable (BM25 or ``ts_rank`` against cosine
similarity) using ranks alone; k = 60 is the paper's constant.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Sequence
from typing import TypeVar

K = 60
T = TypeVar("T", bound=Hashable)


def reciprocal_rank_fusion(*rankings: Sequence[T], k: int = K) -> list[tuple[T, float]]:
    scores: dict[T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def top_by_dot(query: Sequence[float], vectors: Sequence[tuple[int, Sequence[float]]], limit: int) -> list[int]:
    """Chunk ids of the ``limit`` vectors nearest ``query`` (unit vectors: dot product = cosine)."""
    scored = ((sum(a * b for a, b in zip(query, vector, strict=False)), chunk_id) for chunk_id, vector in vectors)
    return [chunk_id for _, chunk_id in heapq.nlargest(limit, scored)]
