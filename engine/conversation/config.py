"""Agent configuration: personalities, per-call overrides, tools.

Built-in personalities come from the product's seed design (friendly, professional,
sales); custom ones load from a TOML file. A call's ``agent_config`` overrides any
field for that call.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator

from .dtmf import GatherConfig
from .function_tools import installed_tools


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


# Sizes an agent configuration may have. It comes from API clients and every byte of the prompt,
# variables and tool schemas is sent to the LLM on every turn; the limits are generous for real
# agents. Errors name the field and the limit, never the value (it may be hostile or personal).
MAX_PROMPT_CHARS = 20_000
MAX_MESSAGE_CHARS = 1_000
"""first_message, filler_text, tool_filler_text, apology_text."""
MAX_VARIABLES = 50
MAX_NAME_CHARS = 64
"""Names of variables, summary fields and outcome values."""
MAX_VARIABLE_CHARS = 1_000
MAX_TOOLS = 16
"""Built-in tool names listed, and HTTP tools."""
MAX_DESCRIPTION_CHARS = 1_000
MAX_TOOL_SCHEMA_BYTES = 8_192
MAX_TOOL_HEADERS = 16
MAX_HEADER_CHARS = 4_096
MAX_URL_CHARS = 2_048
MAX_SUMMARY_FIELDS = 20
MAX_OUTCOME_VALUES = 20
MAX_TRANSFER_CHARS = 256
MAX_KNOWLEDGE_BASES = 8

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_HEADER_VALUE = re.compile(r"^[^\r\n\x00]*$")


def _check_text(field: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise ValueError(f"{field} is longer than {limit} characters")


def _check_mapping(field: str, value: Mapping[str, str], count: int, key_chars: int, value_chars: int) -> None:
    if len(value) > count:
        raise ValueError(f"{field} has more than {count} entries")
    if any(len(k) > key_chars for k in value):
        raise ValueError(f"{field} has a name longer than {key_chars} characters")
    if any(len(v) > value_chars for v in value.values()):
        raise ValueError(f"{field} has a value longer than {value_chars} characters")


class HttpTool(BaseModel):
    """A user tool: the model's arguments are POSTed as JSON to ``url``; the reply body is the result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    url: HttpUrl
    timeout_s: float = Field(5.0, gt=0, le=30)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        _check_text("description", value, MAX_DESCRIPTION_CHARS)
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(orjson.dumps(value))
        except (TypeError, orjson.JSONEncodeError):
            raise ValueError("parameters is not a JSON schema") from None
        if size > MAX_TOOL_SCHEMA_BYTES:
            raise ValueError(f"parameters is larger than {MAX_TOOL_SCHEMA_BYTES} bytes as JSON")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: HttpUrl) -> HttpUrl:
        _check_text("url", str(value), MAX_URL_CHARS)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        _check_mapping("headers", value, MAX_TOOL_HEADERS, 128, MAX_HEADER_CHARS)
        if not all(_HEADER_NAME.match(k) and _HEADER_VALUE.match(v) for k, v in value.items()):
            raise ValueError("headers must be valid HTTP header names and values (no line breaks)")
        return value


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
    function_tools: tuple[str, ...] = Field(
        (), description="Python function tools to offer, by name: installed packages' callagent.tools entry points.")
    transfer_to: str | None = Field(None, description="Default destination for transfer_call.")
    max_duration_s: int = Field(1800, ge=10, le=14400)
    variables: dict[str, str] = Field(default_factory=dict, description="Filled into {placeholders} of the prompt.")
    speculative: bool = Field(True, description="Start the LLM on the tentative end-of-turn signal.")
    opening_guess: str | None = Field(
        "Hello?", max_length=80,
        description=(
            "What a caller who answers mostly says first. As their first words begin (the agent has not "
            "spoken), the reply to these words starts, kept when they say exactly them (case and punctuation "
            "aside), else dropped: one LLM request. Set your callers' usual answer for another language, "
            "or null for none. Needs speculative."
        ),
    )
    incomplete_turn_hold_ms: int = Field(
        700, ge=0, le=5000,
        description=(
            "Extra wait after end-of-turn when the transcript stops mid-sentence (a trailing '...', or "
            "without punctuation its last words: 'my order number is'); half of it when it stops on a "
            "number, which may be dictated in groups."
        ),
    )
    final_contour: bool = Field(
        True,
        description=(
            "Where the transcript has no final punctuation, let the caller's final pitch contour decide "
            "what its words leave unsure: a fall ends the turn ('thanks bye'), a continuation rise after "
            "words that read finished waits half of incomplete_turn_hold_ms ('I'll wait then, ... thanks')."
        ),
    )
    reuse_openers: bool = Field(
        True,
        description=(
            "Keep the audio of short pieces the agent opens replies with ('Sure.', 'Of course.'), once said "
            "twice, and play it at once when a reply opens with the same words: the TTS's wait leaves the "
            "reply's start. Kept per organisation and voice, in memory."
        ),
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
    tool_filler_text: str = "One moment while I check that."
    tool_filler_after_ms: int = Field(
        1500, ge=0, le=30_000,
        description="A tool still running after this long makes the agent say tool_filler_text (once per reply; "
                    "0: never), so the caller does not sit in silence.",
    )
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
    knowledge_bases: tuple[str, ...] = Field(
        (), description="The organisation's knowledge bases (ids or names) the agent answers from.")

    @field_validator("knowledge_bases")
    @classmethod
    def _knowledge_bases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_KNOWLEDGE_BASES:
            raise ValueError(f"knowledge_bases has more than {MAX_KNOWLEDGE_BASES} entries")
        if any(not v.strip() or len(v) > 200 for v in value):
            raise ValueError("knowledge_bases entries must be 1-200 characters")
        return value

    @field_validator("system_prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        _check_text("system_prompt", value, MAX_PROMPT_CHARS)
        return value

    @field_validator("first_message", "filler_text", "tool_filler_text", "apology_text")
    @classmethod
    def _message(cls, value: str | None, info: Any) -> str | None:
        _check_text(info.field_name, value, MAX_MESSAGE_CHARS)
        return value

    @field_validator("transfer_to")
    @classmethod
    def _transfer_to(cls, value: str | None) -> str | None:
        _check_text("transfer_to", value, MAX_TRANSFER_CHARS)
        return value

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        _check_mapping("variables", value, MAX_VARIABLES, MAX_NAME_CHARS, MAX_VARIABLE_CHARS)
        return value

    @field_validator("summary_fields")
    @classmethod
    def _summary_fields(cls, value: dict[str, str]) -> dict[str, str]:
        _check_mapping("summary_fields", value, MAX_SUMMARY_FIELDS, MAX_NAME_CHARS, MAX_DESCRIPTION_CHARS)
        return value

    @field_validator("tools", "http_tools", "function_tools")
    @classmethod
    def _tool_count(cls, value: tuple[Any, ...], info: Any) -> tuple[Any, ...]:
        if len(value) > MAX_TOOLS:
            raise ValueError(f"{info.field_name} has more than {MAX_TOOLS} entries")
        return value

    @field_validator("outcome_values")
    @classmethod
    def _outcome_values(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_OUTCOME_VALUES:
            raise ValueError(f"outcome_values has more than {MAX_OUTCOME_VALUES} entries")
        if any(len(v) > MAX_NAME_CHARS for v in value):
            raise ValueError(f"outcome_values has a value longer than {MAX_NAME_CHARS} characters")
        return value


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
        # The name is not repeated: it may come from an API client (the known ones say enough).
        raise AgentConfigError(f"unknown personality; known: {', '.join(sorted(table))}")
    if set(config.tools) - set(BUILTIN_TOOLS):
        raise AgentConfigError(f"unknown built-in tools in tools; known: {', '.join(BUILTIN_TOOLS)}")
    if config.function_tools:
        installed = installed_tools()
        if set(config.function_tools) - set(installed):
            raise AgentConfigError("unknown function tools in function_tools; installed: "
                                   f"{', '.join(sorted(installed)) or 'none'}")
    return AgentProfile(config=config, personality=personality)


Mode = Literal["listening", "thinking", "speaking"]
