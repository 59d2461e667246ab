"""An OpenAI-compatible ``POST {base}/embeddings`` client (OpenAI, Azure-style gateways, vLLM...).

Request ``{"model", "input": [texts]}``; response ``{"data": [{"index", "embedding"}]}`` per the
OpenAI API reference. Vectors come back normalised to unit length, so a dot product is the
cosine. The endpoint is the operator's setting, never a tenant's, so no egress policy applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import aiohttp

BATCH = 64


class EmbeddingError(RuntimeError):
    """The embeddings endpoint failed or answered something that is not embeddings."""


def normalise(vector: Sequence[float]) -> tuple[float, ...]:
    norm = math.sqrt(sum(v * v for v in vector))
    return tuple(vector) if norm == 0 else tuple(v / norm for v in vector)


class EmbeddingsClient:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout_s: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        out: list[tuple[float, ...]] = []
        for i in range(0, len(texts), BATCH):
            out.extend(await self._batch(texts[i:i + BATCH]))
        return out

    async def _batch(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self.url, json={"model": self.model, "input": list(texts)},
                                          headers=self._headers) as response:
                if response.status != 200:
                    raise EmbeddingError(f"embeddings endpoint answered HTTP {response.status}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise EmbeddingError(f"embeddings endpoint failed: {type(exc).__name__}") from None
        try:
            data = sorted(body["data"], key=lambda d: d["index"])
            vectors = [normalise([float(v) for v in d["embedding"]]) for d in data]
        except (KeyError, TypeError, ValueError):
            raise EmbeddingError("embeddings endpoint answered an unexpected body") from None
        if len(vectors) != len(texts):
            raise EmbeddingError(f"asked for {len(texts)} embeddings, got {len(vectors)}")
        return vectors

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
