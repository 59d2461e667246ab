"""Knowledge-base settings (``CALLAGENT_KNOWLEDGE__...``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class KnowledgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embeddings_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible API (POST {url}/embeddings), e.g. "
                          "https://api.openai.com/v1. Unset: lexical search only.")
    embeddings_model: str = Field("text-embedding-3-small", description="The embeddings model.")
    embeddings_api_key: SecretStr | None = Field(None, description="Bearer key for the embeddings endpoint.")
    pgvector: bool = Field(
        True, description="On PostgreSQL, store and rank embeddings with pgvector (a vector column under an HNSW "
                          "index) where the database has the extension or this role may create it; off: real[] "
                          "ranked in the application.")
    passages: int = Field(3, ge=1, le=10, description="Passages put into the LLM request per turn.")
    candidates: int = Field(20, ge=1, le=200, description="Lexical and vector candidates fused (hybrid search).")
    search_deadline_ms: int = Field(
        800, ge=10, le=10_000, description="A reply waits at most this long for its passages, then goes without.")
    max_document_bytes: int = Field(50_000_000, ge=1, description="Largest document accepted for ingestion.")
