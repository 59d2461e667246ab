"""What one call used of its providers, counted as it happens, for the call's usage and cost.

Counted where the agent hands work to a provider: the LLM's tokens as the server reported them
(the stream's last chunk, or a completion's ``usage``), the caller audio sent to STT, the text
sent to TTS and the audio it returned. Plain integer sums: the per-frame path adds one length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..providers.base import TokenUsage


@dataclass(slots=True)
class CallUsage:
    llm_requests: int = 0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
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

    def as_dict(self) -> dict[str, Any]:
        bytes_per_s = 2 * self.sample_rate
        return {
            "llm_requests": self.llm_requests,
            "llm_prompt_tokens": self.llm_prompt_tokens,
            "llm_completion_tokens": self.llm_completion_tokens,
            "stt_seconds": round(self.stt_bytes / bytes_per_s, 3),
            "tts_characters": self.tts_characters,
            "tts_seconds": round(self.tts_bytes / bytes_per_s, 3),
        }
