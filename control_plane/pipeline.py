"""The control plane's side of a running conversation.

When a media stream's ``start`` arrives, the call agent asks :meth:`CallPorts.setup` which
call this is: the call its credential names (:mod:`.streamauth`; checked live and with the
same ``call_control_id`` by :meth:`~.recorder.CallRecorder.bind`) gives the agent
configuration; Call Control actions go to Telnyx for that ``call_control_id``; turns, the
session and the final summary go to the store. A stream for a call we never dialled (a TeXML
``<Stream>``, another system's ``streaming_start``) runs the default agent when unknown streams
are accepted, and no agent otherwise.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from engine.conversation.config import AgentProfile, resolve
from engine.conversation.context import ToolContext
from engine.conversation.ports import CallReport, CallSetup, NoActions, NoReporter, TurnRecord
from engine.protocol import Start

from .agents import org_tool_destinations, personalities
from .knowledge.service import Retriever
from .recorder import CallContext, UnknownCall
from .sessions import CallSession
from .store import utcnow
from .store.usage import UsageFigures
from .streamauth import ANONYMOUS, StreamCredential

if TYPE_CHECKING:
    from .services import ControlPlane

log = logging.getLogger(__name__)

_FIGURES = ("turn_latency_ms", "engine_added_ms", "stages_ms", "speculative")


class TelnyxCallActions:
    """The agent's tools that act on the call, through Call Control."""

    def __init__(self, cp: ControlPlane, call_control_id: str) -> None:
        self._cp = cp
        self._ccid = call_control_id

    async def hangup(self, reason: str) -> None:
        await self._cp.telnyx_client().hangup(self._ccid)

    async def transfer(self, to: str) -> None:
        await self._cp.telnyx_client().transfer(self._ccid, to)

    async def send_dtmf(self, digits: str) -> None:
        await self._cp.telnyx_client().send_dtmf(self._ccid, digits)

    async def pause_recording(self) -> bool:
        return await self._cp.recorder.pause_recording(self._ccid)

    async def resume_recording(self) -> bool:
        return await self._cp.recorder.resume_recording(self._ccid)


class StoreReporter:
    """Turns, the session and the final summary of one call, into the store; and the stream's
    lease (:mod:`.recovery`), released when the stream ends."""

    def __init__(self, cp: ControlPlane, metadata: dict[str, Any], lease: str | None = None) -> None:
        self._cp = cp
        self._metadata = metadata
        self._lease = lease
        self._usage_stored = UsageFigures()  # of this agent's running totals: what is in the call's usage

    def _new_usage(self, running: dict[str, Any]) -> UsageFigures:
        """What the agent's running totals add to what its turns already stored (taken at once, so
        concurrent turn writes never add the same usage twice)."""
        stored = self._usage_stored
        self._usage_stored = stored.at_least(UsageFigures.parse(running))
        return self._usage_stored.minus(stored)

    async def turn(self, call_control_id: str | None, record: TurnRecord) -> None:
        if call_control_id is None:
            return
        figures = {k: record.timeline.get(k) for k in _FIGURES}
        figures["interrupted"] = record.interrupted
        usage = self._new_usage(record.usage)  # stored with each turn: a crash loses one turn's at most
        try:
            await self._cp.recorder.record_turn(
                call_control_id, record.index - 1, caller_text=record.caller_text, agent_text=record.agent_text,
                interrupted=record.interrupted, latency=figures, usage=usage or None, outcome=record.outcome,
            )
        except UnknownCall:
            return
        await self._cp.sessions.save(CallSession(
            call_control_id=call_control_id,
            call_id=self._metadata.get("call_id"),
            org_id=self._metadata.get("org_id"),
            metadata={k: v for k, v in self._metadata.items() if k not in ("call_id", "org_id")},
            history=[m for m in record.history if m.get("role") in ("user", "assistant", "tool")],
            agent_state={"turns": record.index},
        ))

    async def finished(self, report: CallReport) -> None:
        call_id = self._metadata.get("call_id")
        if self._lease is not None and call_id is not None:
            await self._cp.recovery.closed(call_id, self._lease)
        if report.call_control_id is None:
            return
        outcome = dict(report.outcome or {})
        outcome.setdefault("end_reason", report.end_reason)
        if report.errors:
            outcome.setdefault("errors", report.errors[:10])
        try:
            await self._cp.recorder.finish(report.call_control_id, summary=report.summary, outcome=outcome,
                                           usage=self._new_usage(report.usage))
        except UnknownCall:
            pass
        context = await self._cp.recorder.lookup(report.call_control_id)
        if context is None or context.terminal:
            await self._cp.sessions.delete(report.call_control_id)
        # else: only the stream ended, the call goes on; a re-attached agent resumes from the session.


async def resumed_history(cp: ControlPlane, context: CallContext) -> tuple[list[dict[str, Any]], int]:
    """The conversation so far (and its turn count) of a call picked up again: the session when it
    is still there and has every stored turn, else rebuilt from the stored turns (an in-process
    session dies with its process). The stored turns are the record: a turn is written before the
    session is saved, so an instance killed between the two leaves a session one turn behind, and
    resuming from it would re-use that turn's index and overwrite the turn recorded just before."""
    assert context.call_control_id is not None
    session = await cp.sessions.load(context.call_control_id)
    repo = await cp.repository()
    turns = await repo.list_turns(context.call_id)
    recorded = turns[-1].index + 1 if turns else 0
    if session is not None and session.history:
        count = session.agent_state.get("turns")
        if isinstance(count, int) and count >= recorded:
            return session.history, count
    history: list[dict[str, Any]] = []
    for turn in turns:
        if turn.caller_text:
            history.append({"role": "user", "content": turn.caller_text})
        if turn.agent_text:
            history.append({"role": "assistant", "content": turn.agent_text})
    return history, recorded


def elapsed_since_answer(context: CallContext) -> float:
    """How long the call has been up: its ``max_duration_s`` counts from the answer, as Telnyx's
    ``time_limit_secs`` does, so a call re-attached after a crash keeps only what it had left
    (and an inbound call has no Telnyx limit behind it). Not answered yet (the first stream can
    beat ``call.answered``): nothing has elapsed."""
    if context.answered_at is None:
        return 0.0
    return max(0.0, (utcnow() - context.answered_at).total_seconds())


class CallPorts:
    """The setup of one media stream, whose upgrade request proved ``credential``."""

    def __init__(self, cp: ControlPlane, credential: StreamCredential = ANONYMOUS) -> None:
        self.cp = cp
        self.credential = credential

    def _profile(self, agent: Any) -> AgentProfile:
        return resolve(agent, personalities(self.cp.settings.personalities_file))

    async def setup(self, start: Start) -> CallSetup | None:
        context = await self.cp.recorder.bind(self.credential, start.call_control_id, start.client_state)
        telnyx_ready = self.cp.settings.telnyx_api_key is not None
        actions = TelnyxCallActions(self.cp, start.call_control_id) if telnyx_ready else NoActions()
        if context is None:
            # Not a call of ours (local mode, or streams.accept_unknown): the default agent. Call
            # Control only behind the operator's token: an anonymous stream could name anyone's call.
            anonymous = self.credential.kind == "anonymous"
            return CallSetup(profile=self._profile(self.cp.settings.agent),
                             actions=NoActions() if anonymous else actions, reporter=NoReporter())
        metadata = {
            "call_id": context.call_id, "org_id": context.org_id, "direction": context.direction,
            "campaign_id": str(context.campaign_id) if context.campaign_id else None,
        }
        history: list[dict[str, Any]] = []
        turns, greeting = 0, None
        if self.credential.resume:
            history, turns = await resumed_history(self.cp, context)
            if history or context.stream_state is not None:  # the caller had heard the agent
                greeting = self.cp.settings.streams.recovery_line
        try:
            lease: str | None = await self.cp.recovery.opened(context.call_id)
        except Exception as exc:  # a lease outage must not cost the call (it may be re-attached twice)
            log.warning("call %s: stream lease not taken: %s", context.call_id, exc)
            lease = None
        return CallSetup(profile=self._profile(context.agent), actions=actions,
                         reporter=StoreReporter(self.cp, metadata, lease), history=history, turns=turns,
                         greeting=greeting,
                         tool_destinations=await self._tool_destinations(context.org_id, context.agent),
                         knowledge=await self._knowledge(context.org_id, context.agent),
                         tool_context=self._tool_context(context), elapsed_s=elapsed_since_answer(context))

    async def _knowledge(self, org_id: Any, agent: Any) -> Retriever | None:
        """A retriever over the knowledge bases the agent config attaches (of its own organisation)."""
        if not agent.knowledge_bases:
            return None
        repo = await self.cp.repository()
        # A base deleted since the call started is left out: the call goes on without it.
        kb_ids = await self.cp.knowledge.resolve(repo, org_id, agent.knowledge_bases, strict=False)
        return self.cp.knowledge.retriever(repo, kb_ids) if kb_ids else None

    def _tool_context(self, context: CallContext) -> ToolContext:
        """What the call's user tools are told about it, and the organisation's signing secrets."""
        org = str(context.org_id)
        return ToolContext(
            call_id=str(context.call_id), organisation_id=org, call_control_id=context.call_control_id,
            from_number=context.from_number, to_number=context.to_number, direction=context.direction,
            variables=dict(context.agent.variables),
            signing_secrets=tuple(s.encode() for s in self.cp.settings.tools.signing_secrets(org)),
        )

    async def _tool_destinations(self, org_id: Any, agent: Any) -> tuple[str, ...]:
        """The organisation's tool allow-list (read only for a call that has HTTP tools)."""
        if not agent.http_tools:
            return ()
        return org_tool_destinations(await (await self.cp.repository()).get_organisation(org_id))
