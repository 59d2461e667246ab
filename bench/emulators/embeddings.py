"""OpenAI-compatible ``POST /v1/embeddings`` with deterministic vectors: a hashed bag of words.

Request and response follow the OpenAI API reference: ``{"model", "input": string | [strings],
"dimensions"?}`` -> ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
"model", "usage": {"prompt_tokens", "total_tokens"}}``; 400 for a missing or empty input, 401
without the key. Each word (lower-cased, a plural ``s`` dropped) adds +-1 to two of the vector's
dimensions chosen by its hash; the vector is normalised. Texts sharing words are near, others
are not: no synonyms, no meaning, so the emulator is never a better retriever than a real model,
and the hybrid path is tested offline with the same vector for the same text every run.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import orjson
from aiohttp import web

from .common import bearer_ok

DIMENSIONS = 256
MAX_INPUTS = 2048  # OpenAI's limit on the inputs of one request
_WORD = re.compile(r"[^\W_]+")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def embed(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(_stem(word).encode(), digest_size=8).digest()
        for i in (0, 4):
            slot = int.from_bytes(digest[i:i + 3], "little") % dimensions
            vector[slot] += 1.0 if digest[i + 3] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                        "code": code}}, status=status)


class EmbeddingsEmulator:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        if not bearer_ok(request, self.api_key):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        try:
            body: Any = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict) or not body.get("model"):
            return _error(400, "'model' is required.")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if (not isinstance(inputs, list) or not inputs or len(inputs) > MAX_INPUTS
                or not all(isinstance(t, str) and t for t in inputs)):
            return _error(400, "'input' must be a non-empty string or array of non-empty strings.")
        dimensions = body.get("dimensions", DIMENSIONS)
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 3072:
            return _error(400, "'dimensions' must be an integer from 1 to 3072.")
        self.requests += 1
        tokens = sum(len(_WORD.findall(t)) for t in inputs)
        return web.json_response({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": embed(t, dimensions)}
                     for i, t in enumerate(inputs)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }, dumps=lambda v: orjson.dumps(v).decode())
