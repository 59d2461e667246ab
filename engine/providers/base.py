"""The three provider interfaces the conversation pipeline talks to.

Each real implementation speaks a provider's documented wire protocol (Telnyx STT and
TTS WebSockets, OpenAI-compatible chat completions); the local emulators in
``bench/emulators`` speak the same protocols over real sockets, so the same client code
runs in production, in the demo and in the tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any


class ProviderError(Exception):
    """A provider failed: an error frame or status, a broken connection, a stall past its deadline."""

    def __init__(self, provider: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.retryable = retryable


def provider_of(exc: BaseException, fallback: str) -> str:
    """The failing provider's name (``telnyx-stt``...), or ``fallback`` for a timeout or a
    connection error that names none."""
    return exc.provider if isinstance(exc, ProviderError) else fallback


# -- speech to text ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    is_final: bool
    speech_final: bool = False
    confidence: float | None = None


class SttSession(ABC):
    """One call's streaming recognition: audio in continuously, transcripts out by callback."""

    @property
    def sent_pcm_bytes(self) -> int | None:
        """The fed audio (as PCM16 bytes) actually written to the provider, which is what it bills:
        a client that batches drops its unsent tail at close. None: not tracked (usage then counts
        every byte fed)."""
        return None

    @abstractmethod
    def feed(self, pcm: bytes) -> None:
        """PCM16 little-endian at the session's rate, 20 ms at a time. Synchronous and cheap:
        called on the media hot path; the client batches and sends on its own schedule."""

    @abstractmethod
    async def finalize(self) -> None:
        """Send what is buffered and ask for the final transcript of everything sent so far."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the stream; idempotent; no callbacks after it returns."""


class SpeechToText(ABC):
    can_finalize: bool = True
    """Whether :meth:`SttSession.finalize` makes the recogniser send a final for what it has
    heard. When not (most Telnyx engines), finals come on the recogniser's own segmentation,
    and ``finalize`` only flushes the audio buffered so far."""
    interim_results: bool = True
    """Whether partial transcripts stream while the caller speaks (most Telnyx engines: finals only)."""
    final_wait_s: float = 0.8
    """How long a caller's turn should wait, after it ended, for a final still owed."""

    @abstractmethod
    async def open(
        self,
        *,
        sample_rate: int,
        on_transcript: Callable[[Transcript], None],
        on_error: Callable[[ProviderError], None],
    ) -> SttSession:
        """Open a recognition stream; raises :class:`ProviderError` when that fails."""


# -- language model ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """JSON text, as the model produced it."""


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What one request to the model was billed, as the server reported it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def parse(cls, value: Any) -> TokenUsage | None:
        """An OpenAI ``usage`` object, or None when it is absent or not one."""
        if not isinstance(value, dict):
            return None
        prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
        if not (isinstance(prompt, int) and isinstance(completion, int)):
            return None
        if any(isinstance(n, bool) or not 0 <= n < 10**9 for n in (prompt, completion)):
            return None
        return cls(prompt, completion)


@dataclass(frozen=True, slots=True)
class ChatDelta:
    """A piece of a streamed answer: text as it comes, tool calls once complete, and (last,
    where the server reports it) the request's token usage."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: TokenUsage | None = None


class ChatModel(ABC):
    @property
    def model_name(self) -> str | None:
        """The model the server is asked for, as the price table names it (None: not known)."""
        return None

    @abstractmethod
    def stream(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None
    ) -> AsyncIterator[ChatDelta]:
        """Stream one answer (OpenAI chat message format); raises :class:`ProviderError`."""

    @abstractmethod
    async def complete_json(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
        """One non-streamed answer constrained to a JSON schema (summaries, outcomes)."""

    async def complete_json_with_usage(
        self, messages: list[dict[str, Any]], schema: dict[str, Any]
    ) -> tuple[dict[str, Any], TokenUsage | None]:
        """:meth:`complete_json` and the tokens it was billed (None where the model cannot say)."""
        return await self.complete_json(messages, schema), None


# -- text to speech ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioChunk:
    pcm: bytes
    """PCM16 little-endian at the stream's sample rate."""
    text: str | None = None
    """The text this audio speaks, when the provider aligns them."""


class TtsStream(ABC):
    """One agent reply: text goes in as the LLM produces it, audio comes out as synthesized."""

    sample_rate: int

    @abstractmethod
    async def send_text(self, text: str, *, flush: bool = False) -> None: ...

    @abstractmethod
    async def end(self) -> None:
        """No more text: synthesize what is left, then the audio iterator ends."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[AudioChunk]: ...

    @abstractmethod
    async def aclose(self) -> None:
        """Stop now (barge-in): close the connection, drop pending audio; idempotent."""


class TextToSpeech(ABC):
    @property
    def pieces_alone(self) -> bool:
        """A piece sent with ``flush=True`` is spoken as a unit of its own, as it would be alone
        (so a kept recording of it is what this TTS would say there)."""
        return True

    @abstractmethod
    async def open(self, *, voice: str, sample_rate: int) -> TtsStream:
        """Start a synthesis stream; audio is delivered at ``sample_rate`` (resampled if needed)."""
