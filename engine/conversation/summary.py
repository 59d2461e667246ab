"""The end-of-call summary and structured outcome, from the conversation's transcript."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from ..providers.base import ChatModel, ProviderError, provider_of
from .config import AgentConfig
from .history import Conversation
from .usage import CallUsage


async def summarize(llm: ChatModel, conversation: Conversation, config: AgentConfig,
                    errors: list[str], *, on_provider_error: Callable[[str], None] = lambda provider: None,
                    usage: CallUsage | None = None) -> tuple[str | None, dict[str, Any] | None]:
    """(summary, outcome); a failure is noted in ``errors`` and gives (None, None). The tokens the
    summary was billed are added to ``usage``."""
    if not any(m["role"] == "user" for m in conversation.messages):
        return None, {"outcome": "no_conversation"}
    properties: dict[str, Any] = {
        "summary": {"type": "string", "description": "Two sentences on what happened."},
        "outcome": {"type": "string", "enum": list(config.outcome_values)},
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "follow_up": {"type": "string", "description": "What should happen next, or empty."},
    }
    for name, description in config.summary_fields.items():
        properties[name] = {"type": "string", "description": description}
    schema = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
    lines = "\n".join(f"{m['role']}: {m['text']}" for m in conversation.transcript())
    messages = [
        {"role": "system", "content": "Summarize this phone call and classify its outcome."},
        {"role": "user", "content": lines},
    ]
    try:
        result, billed = await asyncio.wait_for(llm.complete_json_with_usage(messages, schema),
                                                3 * config.provider_deadline_s)
    except (ProviderError, TimeoutError, aiohttp.ClientError) as exc:
        errors.append(f"summary: {exc}")
        on_provider_error(provider_of(exc, "llm"))
        return None, None
    if usage is not None and billed is not None:
        usage.add_llm(billed)
    summary = result.pop("summary", None)
    return (summary if isinstance(summary, str) else None), result
