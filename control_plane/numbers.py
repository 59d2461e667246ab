"""The organisation's own lines: registering a number for inbound calls, with the agent that
answers it, and the organisation's settings. One place for the rules, used by the REST API
and the command line alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from engine.conversation.egress import parse_destinations

from .agents import TOOL_ALLOWED_DESTINATIONS, AgentOverrides, check_agent, org_tool_destinations
from .phone import normalize_e164
from .store import Conflict, Organisation, PhoneNumber, Repository

if TYPE_CHECKING:
    from .settings import Settings

ORGANISATION_SETTINGS: dict[str, type] = {"record_calls": bool, TOOL_ALLOWED_DESTINATIONS: list}
"""Organisation settings the control plane reads, and their types. ``tool_allowed_destinations``:
internal host names or CIDRs this organisation's HTTP tools may reach, honoured only inside the
operator's ``tools.tenant_allowable_networks`` (all others are refused at connect time; see
``engine/conversation/egress.py``)."""


class NumberTaken(Exception):
    """The number is registered already (to this organisation or, unsaid, to another)."""


async def register_number(repo: Repository, settings: Settings, org_id: UUID, number: str,
                          agent_config: Mapping[str, Any] | None = None) -> PhoneNumber:
    """Register ``number`` (E.164) to the organisation; inbound calls to it run the server's default
    agent with ``agent_config``'s overrides. Raises ``InvalidPhoneNumber``, ``ApiError`` (422) for an
    agent config that cannot run, :class:`NumberTaken`."""
    config = AgentOverrides.model_validate(dict(agent_config or {}), strict=False).model_dump(
        mode="json", exclude_unset=True)
    check_agent(settings, config, org_tool_destinations(await repo.get_organisation(org_id)))
    try:
        return await repo.add_phone_number(org_id, normalize_e164(number), config)
    except Conflict:
        raise NumberTaken("that number is already registered") from None


async def reconfigure_number(repo: Repository, settings: Settings, org_id: UUID, number: str,
                             agent_config: Mapping[str, Any]) -> PhoneNumber | None:
    """Replace the agent that answers one of the organisation's numbers (checked as on
    registration); None when the organisation has no such number. Calls already up keep theirs."""
    config = AgentOverrides.model_validate(dict(agent_config), strict=False).model_dump(
        mode="json", exclude_unset=True)
    check_agent(settings, config, org_tool_destinations(await repo.get_organisation(org_id)))
    return await repo.update_phone_number(org_id, normalize_e164(number), config)


async def update_settings(repo: Repository, org_id: UUID, changes: Mapping[str, Any], *,
                          settings: Settings) -> Organisation | None:
    """Merge ``changes`` (``None`` resets a setting to the server's default); ``ValueError`` names
    an unknown setting or a wrong type, without echoing the value, and a tool destination outside
    the operator's ``tools.tenant_allowable_networks``."""
    for key, value in changes.items():
        expected = ORGANISATION_SETTINGS.get(key)
        if expected is None:
            raise ValueError(f"unknown organisation setting (known: {', '.join(sorted(ORGANISATION_SETTINGS))})")
        if value is not None and not isinstance(value, expected):
            raise ValueError(f"{key} must be {expected.__name__}")
        if key == TOOL_ALLOWED_DESTINATIONS and isinstance(value, list):  # (a list: checked above)
            parse_destinations(value)  # ValueError names the entry that is neither a host nor a CIDR
            refused = settings.tools.policy().tenant_refusal(value)
            if refused is not None:
                raise ValueError(refused)
    return await repo.update_organisation_settings(org_id, dict(changes))
