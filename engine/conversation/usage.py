"""What one call used of its providers, counted as it happens, for the call's usage and cost.

Counted where the agent hands work to a provider: the LLM's tokens as the server reported them
(the stream's last chunk, or a completion's ``usage``), the caller audio sent to STT, the text
sent to TTS and the audio it returned. Plain integer sums: the per-frame path adds one length.

A streamed request that ends without the server's usage (cut off by a barge-in, a newer
transcript or a hang-up before its last chunk; or a server that never sends it) is *estimated*,
and kept apart: prompt tokens from the request's characters (about four to a token, plus a few
a message, as OpenAI's own rule of thumb has it), completion tokens one per content chunk
received (OpenAI streams a token a chunk) and four characters a token of tool-call arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..providers.base import TokenUsage

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
"""Each chat message's own overhead (role and separators) in OpenAI's counting."""


def estimate_prompt_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):  # content parts
            chars += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            chars += len(function.get("name") or "") + len(function.get("arguments") or "")
    if tools:
        chars += sum(len(str(tool)) for tool in tools)
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


@dataclass(slots=True)
class CallUsage:
    llm_requests: int = 0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    llm_estimated_requests: int = 0
    llm_estimated_prompt_tokens: int = 0
    llm_estimated_completion_tokens: int = 0
    llm_model: str | None = None
    stt_bytes: int = 0
    """PCM16 sent to speech-to-text (at ``sample_rate``)."""
    tts_characters: int = 0
    tts_bytes: int = 0
    """PCM16 received from text-to-speech (at ``sample_rate``)."""
    sample_rate: int = 8000

    def add_llm(self, usage: TokenUsage) -> None:
        self.llm_requests += 1
        self.llm_prompt_tokens += usage.prompt_tokens
        self.llm_completion_tokens += usage.completion_tokens

    def add_llm_estimate(self, prompt_tokens: int, content_chunks: int, tool_argument_chars: int = 0) -> None:
        """A streamed request that ended without the server's usage."""
        self.llm_estimated_requests += 1
        self.llm_estimated_prompt_tokens += prompt_tokens
        self.llm_estimated_completion_tokens += content_chunks + math.ceil(tool_argument_chars / CHARS_PER_TOKEN)

    def as_dict(self) -> dict[str, Any]:
        bytes_per_s = 2 * self.sample_rate
        return {
            "llm_requests": self.llm_requests,
            "llm_prompt_tokens": self.llm_prompt_tokens,
            "llm_completion_tokens": self.llm_completion_tokens,
            "llm_estimated_requests": self.llm_estimated_requests,
            "llm_estimated_prompt_tokens": self.llm_estimated_prompt_tokens,
            "llm_estimated_completion_tokens": self.llm_estimated_completion_tokens,
            "llm_model": self.llm_model,
            "stt_seconds": round(self.stt_bytes / bytes_per_s, 3),
            "tts_characters": self.tts_characters,
            "tts_seconds": round(self.tts_bytes / bytes_per_s, 3),
        }
