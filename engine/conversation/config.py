"""Agent configuration: personalities, per-call overrides, tools.

Built-in personalities come from the product's seed design (friendly, professional,
sales); custom ones load from a TOML file. A call's ``agent_config`` overrides any
field for that call.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from .dtmf import GatherConfig


class Personality(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    system_prompt: str
    voice: str = "Telnyx.NaturalHD.astra"
    tone: str = ""
    language: str = "en-US"


_PHONE_RULES = (
    "You are speaking on a phone call. Keep every reply short: one or two sentences. "
    "Speak naturally; never use lists, markdown, emojis or URLs. If you did not understand, "
    "ask the caller to repeat. When the caller wants to end the call, say goodbye and call end_call."
)

BUILTIN_PERSONALITIES: dict[str, Personality] = {
    "friendly": Personality(
        name="friendly",
        system_prompt="You are a warm, upbeat assistant for a small business. " + _PHONE_RULES,
        voice="Telnyx.NaturalHD.astra",
        tone="warm and upbeat",
    ),
    "professional": Personality(
        name="professional",
        system_prompt="You are a courteous, precise customer-service representative. " + _PHONE_RULES,
        voice="Telnyx.NaturalHD.albion",
        tone="calm and precise",
    ),
    "sales": Personality(
        name="sales",
        system_prompt=(
            "You are a confident, respectful sales representative. Find out what the caller needs, "
            "explain the benefit in one sentence, and ask for the next step. Never pressure; if the "
            "caller is not interested, thank them and end the call. " + _PHONE_RULES
        ),
        voice="Telnyx.NaturalHD.luna",
        tone="energetic and persuasive",
    ),
}


class HttpTool(BaseModel):
    """A user tool: the model's arguments are POSTed as JSON to ``url``; the reply body is the result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    url: HttpUrl
    timeout_s: float = Field(5.0, gt=0, le=30)
    headers: dict[str, str] = Field(default_factory=dict)


BUILTIN_TOOLS = ("end_call", "transfer_call", "send_dtmf", "pause_recording", "resume_recording")
DEFAULT_TOOLS = ("end_call", "transfer_call", "send_dtmf")


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    personality: str = "friendly"
    system_prompt: str | None = Field(None, description="Replaces the personality's prompt.")
    voice: str | None = Field(
        None, min_length=1, max_length=128,
        description="TTS voice: natural, natural_hd, Telnyx.Natural.<voice>, Telnyx.NaturalHD.<voice>, or a voice "
                    "of the TTS in use (checked against it when a call starts); the personality's by default.",
    )
    language: str | None = None
    first_message: str | None = Field(None, description="Spoken when the call connects.")
    tools: tuple[str, ...] = DEFAULT_TOOLS
    http_tools: tuple[HttpTool, ...] = ()
    transfer_to: str | None = Field(None, description="Default destination for transfer_call.")
    max_duration_s: int = Field(1800, ge=10, le=14400)
    variables: dict[str, str] = Field(default_factory=dict, description="Filled into {placeholders} of the prompt.")
    speculative: bool = Field(True, description="Start the LLM on the tentative end-of-turn signal.")
    incomplete_turn_hold_ms: int = Field(
        700, ge=0, le=5000,
        description="Extra wait after end-of-turn when the transcript stops mid-sentence (no final punctuation).",
    )
    barge_in_words_wait_ms: int = Field(
        600, ge=0, le=5000,
        description=(
            "A barge-in the VAD confirmed before the recogniser heard a word keeps the reply held this "
            "long for words; none (noise) and the reply goes on."
        ),
    )
    provider_deadline_s: float = Field(2.0, gt=0, le=30, description="A provider stalled this long is retried once.")
    filler_text: str = "One moment, please."
    apology_text: str = "I'm sorry, I'm having technical trouble. Please call again later. Goodbye."
    gather: GatherConfig = GatherConfig()
    pci_dtmf_sequence: str | None = Field(
        None, pattern=r"^[0-9*#]{2,6}$",
        description="Keys that toggle PCI mode (recording paused, digits masked), e.g. '*7'.",
    )
    summary_fields: dict[str, str] = Field(
        default_factory=dict, description="Extra outcome fields to extract at hang-up: name -> description."
    )
    outcome_values: tuple[str, ...] = ("resolved", "follow_up", "not_interested", "voicemail", "no_conversation")


class AgentProfile(BaseModel):
    """An :class:`AgentConfig` resolved against its personality: what a call actually runs with."""

    model_config = ConfigDict(frozen=True)

    config: AgentConfig
    personality: Personality

    @property
    def voice(self) -> str:
        return self.config.voice or self.personality.voice

    @property
    def language(self) -> str:
        return self.config.language or self.personality.language

    @property
    def system_prompt(self) -> str:
        prompt = self.config.system_prompt or self.personality.system_prompt
        if self.personality.tone and not self.config.system_prompt:
            prompt += f" Your tone is {self.personality.tone}."
        if self.config.variables:
            prompt += " Known details about this call: " + "; ".join(
                f"{k}: {v}" for k, v in sorted(self.config.variables.items())
            ) + "."
        return prompt


class AgentConfigError(ValueError):
    """A personality or agent configuration is unknown or invalid."""


def load_personalities(path: Path | None) -> dict[str, Personality]:
    """Built-ins plus those in a TOML file of ``[personalities.<name>]`` tables."""
    personalities = dict(BUILTIN_PERSONALITIES)
    if path is None:
        return personalities
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AgentConfigError(f"cannot read personalities from {path}: {exc}") from None
    for name, table in data.get("personalities", {}).items():
        try:
            personalities[name] = Personality(name=name, **table)
        except (TypeError, ValidationError) as exc:
            raise AgentConfigError(f"personality {name!r} in {path}: {exc}") from None
    return personalities


def resolve(config: AgentConfig, personalities: dict[str, Personality] | None = None) -> AgentProfile:
    table = personalities if personalities is not None else BUILTIN_PERSONALITIES
    personality = table.get(config.personality)
    if personality is None:
        raise AgentConfigError(f"unknown personality {config.personality!r}; known: {', '.join(sorted(table))}")
    unknown = set(config.tools) - set(BUILTIN_TOOLS)
    if unknown:
        raise AgentConfigError(f"unknown built-in tools {sorted(unknown)}; known: {', '.join(BUILTIN_TOOLS)}")
    return AgentProfile(config=config, personality=personality)


Mode = Literal["listening", "thinking", "speaking"]
