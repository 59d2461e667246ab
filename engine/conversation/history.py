"""Conversation history, and what the caller actually heard of an interrupted reply.

When the caller cuts the agent off, the history must hold only the words that were
played, or the model will believe it said things the caller never heard. Playout
accounting gives the heard duration; :class:`SpokenText` maps it back to text using the
audio/text alignment the TTS provides (a text segment per stretch of audio), falling
back to proportional mapping inside a segment.
"""

from __future__ import annotations

from typing import Any

INTERRUPTED_NOTE = " [interrupted by the caller]"


class SpokenText:
    """Text segments of one agent reply, aligned to the audio that speaks them."""

    __slots__ = ("_segments", "_audio_ms", "_pending_text", "_aligned")

    def __init__(self) -> None:
        self._segments: list[tuple[float, str]] = []  # (audio start ms, text)
        self._audio_ms = 0.0
        self._pending_text: list[str] = []
        self._aligned = False  # the provider names the text of its audio

    def add_text(self, text: str) -> None:
        """Text sent to TTS; it is spoken by the audio that follows it."""
        self._pending_text.append(text)

    def add_audio(self, duration_ms: float, text: str | None = None) -> None:
        """Audio produced. ``text`` is the provider's alignment for it, when it gives one."""
        if text:
            self._aligned = True
            self._segments.append((self._audio_ms, text.strip()))
            self._pending_text.clear()
        elif self._pending_text and not self._aligned and (
                not self._segments or self._audio_ms > self._segments[-1][0]):
            # Without alignment, attribute queued text to the audio that starts now. (A provider
            # that aligns names each segment: its unnamed audio is still the previous sentence's,
            # however early the next sentence's text went out.)
            self._segments.append((self._audio_ms, " ".join(t.strip() for t in self._pending_text)))
            self._pending_text.clear()
        self._audio_ms += duration_ms

    def add_inserted(self, duration_ms: float, text: str) -> None:
        """A fixed line (the tool filler) spoken between the TTS's audio: its own segment, which
        leaves the alignment of the text and audio around it as it was."""
        self._segments.append((self._audio_ms, text.strip()))
        self._audio_ms += duration_ms

    @property
    def audio_ms(self) -> float:
        return self._audio_ms

    @property
    def text(self) -> str:
        return " ".join(t for _, t in self._segments if t)

    def heard(self, heard_ms: float) -> str:
        """The words played within the first ``heard_ms`` of audio (whole words only)."""
        if heard_ms >= self._audio_ms:
            return self.text
        out: list[str] = []
        for i, (start, text) in enumerate(self._segments):
            end = self._segments[i + 1][0] if i + 1 < len(self._segments) else self._audio_ms
            if heard_ms >= end:
                out.append(text)
                continue
            if heard_ms > start and end > start:
                words = text.split()
                n = int(len(words) * (heard_ms - start) / (end - start))
                if n:
                    out.append(" ".join(words[:n]))
            break
        return " ".join(out)


class Conversation:
    """The model's view of the call: a system prompt and the turns so far."""

    def __init__(self, system_prompt: str, *, max_turns: int = 40) -> None:
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self.messages: list[dict[str, Any]] = []

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
        self._trim()

    def take_back_user(self, text: str) -> bool:
        """Take the caller's last message back out (the reply to it was not heard at all: it
        merges with what the caller says next). False when it is not the last message."""
        messages = self.messages
        if not messages or messages[-1].get("role") != "user" or messages[-1].get("content") != text:
            return False
        messages.pop()
        return True

    def add_assistant(self, text: str, *, interrupted: bool = False) -> None:
        if not text and not interrupted:
            return
        content = text + INTERRUPTED_NOTE if interrupted else text
        self.messages.append({"role": "assistant", "content": content, "interrupted": interrupted})

    def add_tool_exchange(self, call_id: str, name: str, arguments: str, result: str) -> None:
        self.messages.append({
            "role": "assistant", "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
        })
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": result})

    def for_model(self) -> list[dict[str, Any]]:
        """Messages in the OpenAI chat format (internal flags stripped)."""
        out: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}]
        for message in self.messages:
            out.append({k: v for k, v in message.items() if k != "interrupted"})
        return out

    def transcript(self) -> list[dict[str, Any]]:
        """Who said what, for records and summaries."""
        return [
            {"role": m["role"], "text": m["content"], "interrupted": m.get("interrupted", False)}
            for m in self.messages
            if m["role"] in ("user", "assistant") and m.get("content")
        ]

    def _trim(self) -> None:
        # Keep the most recent turns; never start the window on a tool result.
        users = [i for i, m in enumerate(self.messages) if m["role"] == "user"]
        if len(users) > self.max_turns:
            self.messages = self.messages[users[-self.max_turns]:]
