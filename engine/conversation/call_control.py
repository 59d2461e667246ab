"""Call Control from the conversation: the model's tools, PCI mode, and what waits for a reply.

The model's ``end_call`` and ``transfer_call`` take effect when the reply that calls them has
played (the caller hears the goodbye first); a barge-in calls them off. Every tool result,
errors and timeouts included, goes back to the model as text it can talk about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ..providers.base import ToolCall
from .config import AgentConfig
from .context import ToolContext
from .egress import EgressPolicy
from .history import Conversation
from .ports import CallActions
from .tools import ToolClient


class CallControl:
    def __init__(self, actions: CallActions, errors: list[str],
                 spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]]) -> None:
        self.actions = actions
        self.errors = errors
        self.spawn = spawn
        self.pci = False
        self.end_reason: str | None = None
        self.hangup_after: str | None = None
        """Hang up, with this reason, once the reply playing has been heard."""
        self.transfer_after: str | None = None
        self.hung_up = False

    async def run_tools(self, calls: list[ToolCall], messages: list[dict[str, Any]], conversation: Conversation,
                        config: AgentConfig, client: ToolClient | None, policy: EgressPolicy | None,
                        context: ToolContext | None = None) -> bool:
        """Run the model's tool calls; True when the model should continue with the results."""
        follow_up = False
        for call in calls:
            result: str | None = None
            if call.name == "end_call":
                self.hangup_after = self.end_reason = "agent ended the call"
            elif call.name == "transfer_call":
                target = _argument(call, "to") or config.transfer_to
                if target:
                    self.transfer_after = target
                else:
                    result = "error: no transfer destination is configured"
            elif call.name == "send_dtmf":
                self.spawn(self.send_dtmf(_argument(call, "digits") or ""))
            elif call.name in ("pause_recording", "resume_recording"):
                paused = await self.set_pci(call.name == "pause_recording")
                result = "recording paused" if paused else (
                    "recording resumed" if not self.pci else "the call is not being recorded")
            else:
                if client is None:
                    result = f"error: {call.name} is unavailable"
                else:  # a user tool, HTTP or Python function: every failure comes back as a result
                    result = await client.call(config, call.name, call.arguments, context, policy)
            if result is not None:
                conversation.add_tool_exchange(call.id, call.name, call.arguments, result)
                messages.extend(conversation.messages[-2:])
                follow_up = True
        return follow_up

    def reply_played(self) -> None:
        """The reply was heard to its end: a hang-up or transfer it asked for happens now."""
        if self.hangup_after is not None:
            self.spawn(self.hangup(self.hangup_after))
        elif self.transfer_after is not None:
            self.spawn(self.transfer(self.transfer_after))

    def call_off(self) -> None:
        """The caller cut the reply off: they have more to say than goodbye."""
        self.hangup_after = self.transfer_after = None

    def keys_entered(self, digits: str, pci_sequence: str | None) -> str | None:
        """Keys the caller entered, as the conversation may see them: digits masked in PCI mode,
        and None for the PCI sequence, which turns the mode on or off instead."""
        if pci_sequence and digits.rstrip("#") == pci_sequence:
            self.spawn(self.set_pci(not self.pci))
            return None
        if self.pci:
            digits = "".join("•" if d.isdigit() else d for d in digits)  # never in the transcript
        return digits

    async def set_pci(self, on: bool) -> bool:
        """PCI mode: recording paused and key presses masked, while card details are given."""
        self.pci = on
        try:
            return await (self.actions.pause_recording() if on else self.actions.resume_recording()) and on
        except Exception as exc:
            self.errors.append(f"{'pause' if on else 'resume'}_recording: {exc}")
            return False

    async def hangup(self, reason: str) -> None:
        if self.hung_up:
            return
        self.hung_up = True
        self.end_reason = self.end_reason or reason
        try:
            await self.actions.hangup(reason)
        except Exception as exc:  # the call may already be gone
            self.errors.append(f"hangup: {exc}")

    async def transfer(self, to: str) -> None:
        self.transfer_after = None
        try:
            await self.actions.transfer(to)
            self.end_reason = f"transferred to {to}"
        except Exception as exc:
            self.errors.append(f"transfer: {exc}")

    async def send_dtmf(self, digits: str) -> None:
        try:
            await self.actions.send_dtmf(digits)
        except Exception as exc:
            self.errors.append(f"send_dtmf: {exc}")


def _argument(call: ToolCall, name: str) -> str | None:
    try:
        value = orjson.loads(call.arguments or "{}").get(name)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None
