"""What the media pipeline uses to find its call and report back into the store.

The media stream's upgrade request carries its credential (:mod:`.streamauth`) and its
``start`` frame the ``call_control_id``. :meth:`CallRecorder.bind` checks they name one live
call and turns it into a :class:`CallContext` (ids, numbers, ``agent_config``). While the call runs the pipeline
calls :meth:`CallRecorder.record_turn` after each turn (transcript both ways, whether
the agent was cut off, latency figures) and :meth:`CallRecorder.finish` once with the
summary and outcome. Transcripts, summary and outcome are sealed at rest by the store.
Nothing is written for a call whose personal data was erased.

Example (inside a ``MediaListener``)::

    recorder = control_plane(request).recorder  # control_plane.context
    ctx = await recorder.bind(credential, start.call_control_id)
    await recorder.record_turn(ctx.call_control_id, 0, caller_text="hi", agent_text="Hello!",
                               latency=latency_figures(timeline))
    await recorder.finish(ctx.call_control_id, summary="...", outcome={"booked": True})
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from engine.conversation.config import AgentConfig
from engine.conversation.ports import StreamRefused
from engine.timeline import TurnTimeline
from engine.turn_outcome import TurnOutcome

from .agents import effective_agent
from .callstate import call_id_from_client_state
from .events import wants_recording
from .store import TERMINAL_STATUSES, Call, Turn, utcnow
from .store.usage import UsageFigures
from .streamauth import StreamCredential, unknown_streams_allowed

if TYPE_CHECKING:
    from .services import ControlPlane

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallContext:
    """A call as the pipeline needs it. ``agent`` is what to run (server default + overrides);
    ``agent_config`` the call's raw overrides as stored."""

    call_id: UUID
    org_id: UUID
    call_control_id: str | None
    direction: str
    to_number: str | None
    from_number: str | None
    status: str
    campaign_id: UUID | None
    agent: AgentConfig
    agent_config: dict[str, Any] = field(default_factory=dict)
    stream_state: str | None = None
    answered_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def of(cls, call: Call, default_agent: AgentConfig) -> CallContext:
        return cls(call_id=call.id, org_id=call.org_id, call_control_id=call.call_control_id,
                   direction=call.direction, to_number=call.to_number, from_number=call.from_number,
                   status=call.status, campaign_id=call.campaign_id,
                   agent=effective_agent(default_agent, call.agent_config), agent_config=dict(call.agent_config),
                   stream_state=call.stream_state, answered_at=call.answered_at)


def latency_figures(timeline: TurnTimeline) -> dict[str, Any]:
    """The derived, process-independent figures of a turn (raw monotonic stamps mean nothing elsewhere)."""
    return {
        "turn_latency_ms": timeline.turn_latency_ms,
        "engine_added_ms": timeline.engine_added_ms,
        "stages_ms": timeline.stages_ms(),
        "speculative": timeline.speculative,
        "interrupted": timeline.interrupted is not None,
    }


def turn_outcome_fields(outcome: TurnOutcome | None) -> dict[str, Any]:
    """How a turn ended, as the turns table's columns (none when the engine gave no account)."""
    if outcome is None:
        return {}
    return {"end_reason": outcome.end.value, "hold": None if outcome.hold is None else outcome.hold.value,
            "contour": outcome.contour, "speculation": outcome.speculation.value, "merged": outcome.merged}


class UnknownCall(LookupError):
    """No call with that call_control_id."""


class CallRecorder:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    async def lookup(self, call_control_id: str) -> CallContext | None:
        """The call by ``call_control_id``."""
        repo = await self.cp.repository()
        call = await repo.find_call_by_control_id(call_control_id)
        return None if call is None else CallContext.of(call, self.cp.settings.agent)

    async def bind(self, credential: StreamCredential, call_control_id: str,
                   client_state: str | bytes | None = None) -> CallContext | None:
        """The call a media stream belongs to, checked; None: a stream of no call of ours.

        Raises :class:`StreamRefused` when the stream may run no agent at all: its credential
        names a call that is over or another ``call_control_id``, or it is not ours and unknown
        streams are not accepted. ``client_state`` is trusted only behind the operator's token:
        anyone can write a call id into it.
        """
        repo = await self.cp.repository()
        call: Call | None = None
        if credential.kind == "call":
            assert credential.call_id is not None
            call = await repo.get_call_unscoped(credential.call_id)
            if call is None:
                raise StreamRefused("its credential names no call")
        elif credential.kind == "operator":
            call = await repo.find_call_by_control_id(call_control_id) if call_control_id else None
            if call is None:
                call_id = call_id_from_client_state(client_state)
                call = await repo.get_call_unscoped(call_id) if call_id is not None else None
        if call is None:
            if not unknown_streams_allowed(self.cp):
                raise StreamRefused("a stream of no call this server placed or answered")
            return None
        if call.terminal:
            raise StreamRefused(f"its call is over ({call.status})")
        if call.call_control_id is not None and call.call_control_id != call_control_id:
            raise StreamRefused("its call_control_id is not its call's")
        if call.call_control_id is None and call_control_id:
            # The stream beat both the dial response and call.initiated: remember the id now.
            call = await repo.update_call(call.id, lambda c: c if c.call_control_id else
                                          c.model_copy(update={"call_control_id": call_control_id})) or call
            if call.call_control_id != call_control_id:
                raise StreamRefused("its call_control_id is not its call's")
        return CallContext.of(call, self.cp.settings.agent)

    async def _call(self, call_control_id: str) -> Call:
        repo = await self.cp.repository()
        call = await repo.find_call_by_control_id(call_control_id)
        if call is None:
            raise UnknownCall(call_control_id)
        return call

    async def record_turn(self, call_control_id: str, index: int, *, caller_text: str | None,
                          agent_text: str | None, interrupted: bool = False,
                          latency: Mapping[str, Any] | TurnTimeline | None = None,
                          usage: UsageFigures | None = None, outcome: TurnOutcome | None = None) -> None:
        """Store turn ``index`` (0-based; recording the same index again replaces it) with how it
        ended (``outcome``, the turn policy's account), and add ``usage`` (what the agent used since
        its last record) to the call's."""
        call = await self._call(call_control_id)
        if call.erased_at is not None:
            return
        figures = latency_figures(latency) if isinstance(latency, TurnTimeline) else dict(latency or {})
        if outcome is None and isinstance(latency, TurnTimeline):
            outcome = latency.outcome
        repo = await self.cp.repository()
        await repo.upsert_turn(Turn(call_id=call.id, org_id=call.org_id, index=index, caller_text=caller_text,
                                    agent_text=agent_text, interrupted=interrupted, latency=figures,
                                    created_at=utcnow(), **turn_outcome_fields(outcome)))
        if usage:
            await repo.add_usage(call.id, call.org_id, usage, utcnow())

    async def finish(self, call_control_id: str, *, summary: str | None = None,
                     outcome: Mapping[str, Any] | None = None,
                     usage: Mapping[str, Any] | UsageFigures | None = None) -> None:
        """The conversation's summary and structured outcome, once the conversation is over, and
        what its agent used of the providers (added to the call's usage; the outcome's
        ``llm_tokens`` is the call's total so far)."""
        call = await self._call(call_control_id)
        if call.erased_at is not None:
            return
        repo = await self.cp.repository()
        update: dict[str, Any] = {}
        if summary is not None:
            update["summary"] = summary
        if outcome is not None:
            update["outcome"] = dict(outcome)
        if usage is not None:
            figures = usage if isinstance(usage, UsageFigures) else UsageFigures.parse(dict(usage))
            totals = await repo.add_usage(call.id, call.org_id, figures, utcnow())
            update["outcome"] = {**update.get("outcome", call.outcome or {}), "llm_tokens": totals.llm_tokens}
        if update:
            await repo.update_call(call.id, lambda c: c if c.erased_at else c.model_copy(update=update))

    # -- recording and PCI -------------------------------------------------------------------

    async def _recording_call(self, call_control_id: str) -> Call | None:
        call = await self._call(call_control_id)
        if call.terminal or not await wants_recording(self.cp, call):
            return None
        return call

    async def pause_recording(self, call_control_id: str) -> bool:
        """Pause the call's recording (e.g. before a card number is read or keyed). False: not recording."""
        call = await self._recording_call(call_control_id)
        if call is None:
            return False
        await self.cp.telnyx_client().record_pause(call_control_id)
        log.info("call %s: recording paused", call.id)
        return True

    async def resume_recording(self, call_control_id: str) -> bool:
        call = await self._recording_call(call_control_id)
        if call is None:
            return False
        await self.cp.telnyx_client().record_resume(call_control_id)
        log.info("call %s: recording resumed", call.id)
        return True

    @asynccontextmanager
    async def pci_window(self, call_control_id: str) -> AsyncIterator[bool]:
        """``async with recorder.pci_window(ccid):`` around a payment tool or DTMF card entry:
        the recording is paused inside and resumed after, even when the block fails."""
        paused = await self.pause_recording(call_control_id)
        try:
            yield paused
        finally:
            if paused:
                await self.resume_recording(call_control_id)
