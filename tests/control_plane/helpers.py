"""Small helpers for the control-plane tests."""

from __future__ import annotations

from typing import Any

from control_plane.campaigns.models import CampaignConfig
from control_plane.campaigns.store import CampaignStore, PreparedContact


async def dump_database(repo: Any) -> str:
    """Every row of every table the store owns, as one string (for "no trace left" checks)."""
    async with repo.connection() as conn:
        if repo.dialect == "postgres":
            rows = await conn.fetch(
                "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        else:
            rows = await conn.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        parts = []
        for row in rows:
            for record in await conn.fetch(f'SELECT * FROM "{row["name"]}"'):
                parts.append(f"{row['name']}: {record!r}")
    return "\n".join(parts)


def open_sealed(text: str, cipher: Any) -> str:
    """``text`` with every sealed token found in it replaced by what it opens to (any column)."""
    import re

    contexts = [
        "calls.to", "calls.from", "calls.agent_config", "calls.summary", "calls.outcome", "calls.recording_url",
        "turns.caller_text", "turns.agent_text", "call_events.payload", "campaign_contacts.phone",
        "campaign_contacts.data", "campaigns.agent_config", "campaigns.from", "campaign_dialer.config", "session",
        "webhook_messages.payload", "webhook_endpoints.secret",
    ]

    def opened(match: re.Match[str]) -> str:
        for context in contexts:
            try:
                return cipher.open_bytes(match.group(0), context).decode()
            except Exception:
                continue
        return match.group(0)

    return re.sub(r"v1\.[0-9a-f]{8}\.[A-Za-z0-9_\-]+", opened, text)


async def make_campaign(repo: Any, org_id: Any, name: str, *, caller: str = "+14155550100") -> Any:
    """A draft campaign created the one way campaigns are made (with its dialer row)."""
    return await CampaignStore(repo).create_campaign(org_id, name, {}, CampaignConfig(caller_numbers=(caller,)))


async def add_contact(repo: Any, org_id: Any, campaign_id: Any, phone: str, data: dict[str, Any] | None = None) -> None:
    contact = PreparedContact(phone=phone, phone_hash=repo.hash_phone(phone), data=data or {}, row=1)
    await CampaignStore(repo).import_batch(org_id, campaign_id, [contact])


def with_tenant_networks(settings: Any, *networks: str) -> Any:
    """``settings`` whose operator lets organisations open ``networks`` for their tools."""
    tools = settings.tools.model_copy(update={"tenant_allowable_networks": networks})
    return settings.model_copy(update={"tools": tools})
