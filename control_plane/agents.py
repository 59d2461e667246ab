"""A call's agent: the server default (``settings.agent``) with the call's overrides applied.

Calls and numbers store only the overrides the client gave (see
:func:`control_plane.api.schemas.agent_overrides`), so changing the default agent changes
every call that did not say otherwise. :func:`effective_agent` is what the conversation
pipeline runs with; :func:`check_agent` also resolves the personality (built-in or from
``personalities_file``) and checks the voice against the TTS in use, so an unknown one is
refused at the API instead of mid-call.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator
from yarl import URL

from engine.conversation.config import (
    AgentConfig,
    AgentConfigError,
    AgentProfile,
    Personality,
    load_personalities,
    resolve,
)
from engine.providers.voices import UnknownVoice, catalogue_for

from .errors import ApiError, validation_details
from .voicemail import VoicemailPolicy, check_speakable


class AgentOverrides(AgentConfig):
    """The conversation pipeline's :class:`engine.conversation.config.AgentConfig` fields, as
    per-call overrides of the server's default agent (``settings.agent``), plus the control
    plane's own ``record``. Only the fields given are stored and applied."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    record: bool | None = Field(
        None, description="Record the call (dual channel) from answer; unset: the organisation's record_calls setting."
    )
    voicemail: VoicemailPolicy | None = Field(
        None, description="With answering_machine_detection, what to do when a machine answers: hang up, or leave "
                          "this message after the beep. The agent waits for the verdict either way. Unset: hang up. "
                          "A campaign's calls follow the campaign's voicemail policy instead.")

    @field_validator("voicemail")
    @classmethod
    def _speakable(cls, value: VoicemailPolicy | None) -> VoicemailPolicy | None:
        return None if value is None else check_speakable(value)





TOOL_ALLOWED_DESTINATIONS = "tool_allowed_destinations"
"""The organisation setting listing internal hosts or CIDRs its HTTP tools may reach."""


def org_tool_destinations(org: Any) -> tuple[str, ...]:
    return tuple(org.settings.get(TOOL_ALLOWED_DESTINATIONS) or ()) if org is not None else ()


CONTROL_PLANE_AGENT_FIELDS = frozenset(AgentOverrides.model_fields) - frozenset(AgentConfig.model_fields)
"""Keys of a stored agent_config that the control plane uses and the pipeline does not."""


def pipeline_fields(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides without the control plane's own keys (``record``)."""
    return {k: v for k, v in overrides.items() if k not in CONTROL_PLANE_AGENT_FIELDS}


def effective_agent(default: AgentConfig, overrides: Mapping[str, Any]) -> AgentConfig:
    return AgentConfig.model_validate({**default.model_dump(), **pipeline_fields(overrides)})


@functools.lru_cache(maxsize=8)
def _personalities(path: Path | None, mtime: float | None) -> dict[str, Personality]:
    return load_personalities(path)


def personalities(path: Path | None) -> dict[str, Personality]:
    try:
        mtime = path.stat().st_mtime if path is not None else None
    except OSError:
        mtime = None
    return _personalities(path, mtime)


def check_tool_urls(settings: Any, agent: AgentConfig, tool_destinations: Iterable[str] = ()) -> None:
    """A 400 for an HTTP tool whose URL is an internal IP literal (``http://169.254.169.254/``):
    refused now rather than only when the model calls it. Host names are checked where the
    connection is made (see ``engine/conversation/egress.py``): DNS may answer differently then."""
    policy = settings.tools.policy()
    try:
        policy = policy.extended(tool_destinations)
    except ValueError:
        pass  # an unreadable organisation list adds nothing
    for index, tool in enumerate(agent.http_tools):
        kind = policy.literal_refusal(URL(str(tool.url)))
        if kind is not None:
            raise ApiError(400, "validation_error", f"http_tools[{index}].url points at a {kind} address; "
                           "tools may only reach public addresses",
                           [{"loc": ["agent_config", "http_tools", index, "url"], "msg": f"{kind} address",
                             "type": "internal_address"}])


def check_agent(settings: Any, overrides: Mapping[str, Any], tool_destinations: Iterable[str] = ()) -> AgentConfig:
    """The effective agent, or a 422 naming what is wrong with the overrides (400 for a tool
    URL that points inside: see :func:`check_tool_urls`)."""
    try:
        agent = effective_agent(settings.agent, overrides)
    except ValidationError as exc:
        raise ApiError(422, "invalid_agent_config", "agent_config is not valid for this server",
                       validation_details(exc)) from None
    try:
        profile = resolve(agent, personalities(settings.personalities_file))
    except AgentConfigError as exc:
        raise ApiError(422, "invalid_agent_config", str(exc)) from None
    check_voice(settings, profile)
    check_tool_urls(settings, agent, tool_destinations)
    return agent


def check_voice(settings: Any, profile: AgentProfile) -> None:
    """A 400 naming the accepted forms when the TTS in use does not take the agent's voice,
    rather than a failure on the call's first reply."""
    try:
        catalogue_for(settings.providers).resolve(profile.voice)
    except UnknownVoice as exc:
        if profile.config.voice is None:  # the personality's own: the server's configuration, not the request's
            raise ApiError(422, "invalid_agent_config", "this personality's voice is not one this server's TTS "
                           "takes; give agent_config.voice") from None
        raise ApiError(400, "invalid_voice", str(exc),
                       [{"loc": ["agent_config", "voice"], "msg": str(exc), "type": "unknown_voice"}]) from None
