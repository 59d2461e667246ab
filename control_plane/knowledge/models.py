"""The knowledge records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    id: UUID
    org_id: UUID
    name: str
    description: str
    created_at: datetime
    documents: int = 0
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class Document:
    id: UUID
    kb_id: UUID
    name: str
    content_type: str
    sha256: str
    chars: int
    chunks: int
    embedded: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage to store: its text and, when embeddings are configured, its vector."""

    ord: int
    text: str
    embedding: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    chunk_id: int
    source: str
    text: str
    score: float
