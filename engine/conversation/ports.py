"""What the conversation layer needs from the outside world, as small protocols.

The engine never imports the control plane: the composition root hands a
:class:`CallActions` (Call Control: hang up, transfer, send DTMF) and a
:class:`CallReporter` (records) to each call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..turn_outcome import TurnOutcome


class CallActions(Protocol):
    async def hangup(self, reason: str) -> None: ...
    async def transfer(self, to: str) -> None: ...
    async def send_dtmf(self, digits: str) -> None: ...
    async def pause_recording(self) -> bool:
        """Stop recording (PCI: card details follow); False when the call is not recorded."""
    async def resume_recording(self) -> bool: ...


@dataclass(frozen=True)
class TurnRecord:
    index: int
    caller_text: str
    agent_text: str
    interrupted: bool
    timeline: dict[str, Any]
    """The turn's stamps and derived latencies (see :meth:`TurnTimeline.as_dict`)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """The conversation so far (OpenAI message format), so another process could take over."""
    usage: dict[str, Any] = field(default_factory=dict)
    """What this agent has used of its providers so far (cumulative, as :attr:`CallReport.usage`),
    so a process that dies mid-call loses at most one turn's usage."""
    outcome: TurnOutcome | None = None
    """How the caller's turn ended, any hold, and what became of the speculation (the turn policy's
    account; None where the turn had no timeline: keys or words before the caller first spoke)."""


@dataclass
class CallReport:
    call_control_id: str | None
    transcript: list[dict[str, Any]]
    summary: str | None
    outcome: dict[str, Any] | None
    end_reason: str
    turns: int
    speculation: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    """What the call used of its providers (:meth:`~.usage.CallUsage.as_dict`)."""


class CallReporter(Protocol):
    async def turn(self, call_control_id: str | None, record: TurnRecord) -> None: ...
    async def finished(self, report: CallReport) -> None: ...


@dataclass(frozen=True)
class CallSetup:
    """What the outside world knows about a stream's call, resolved when its ``start`` arrives:
    which agent to run, and where its actions and records go.

    A call picked up again after its stream was lost carries ``history`` (the conversation so
    far, OpenAI message format), ``turns`` (how many were recorded) and ``greeting`` (said
    instead of the first message)."""

    profile: Any  # AgentProfile (kept untyped here to keep this module import-light)
    actions: CallActions
    reporter: CallReporter
    tool_destinations: tuple[str, ...] = ()
    """Internal hosts or CIDRs this call's HTTP tools may reach besides the server's allow-list
    (its organisation's ``tool_allowed_destinations``)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    greeting: str | None = None
    knowledge: Any = None
    """A :class:`~engine.conversation.knowledge.KnowledgeRetriever` over the knowledge bases the
    agent config attaches (None: the agent knows only its prompt)."""
    tool_context: Any = None
    """The :class:`~.context.ToolContext` this call's user tools receive (and sign with)."""
    elapsed_s: float = 0.0
    """How long the call has been up before this stream (one picked up again after a crash or a
    dropped stream): ``max_duration_s`` counts from the call's answer, not from each stream."""


class StreamRefused(Exception):
    """Raised by a setup: this stream may not run any agent (not ours, wrong call, call over).
    The agent says nothing and the stream is closed."""


class NoActions:
    """For streams with no Call Control behind them (e.g. a bare media stream in local mode)."""

    async def hangup(self, reason: str) -> None:
        return None

    async def transfer(self, to: str) -> None:
        raise RuntimeError("transfer needs Call Control; this stream has none")

    async def send_dtmf(self, digits: str) -> None:
        raise RuntimeError("send_dtmf needs Call Control; this stream has none")

    async def pause_recording(self) -> bool:
        return False  # nothing records a stream without Call Control

    async def resume_recording(self) -> bool:
        return False


class NoReporter:
    async def turn(self, call_control_id: str | None, record: TurnRecord) -> None:
        return None

    async def finished(self, report: CallReport) -> None:
        return None
