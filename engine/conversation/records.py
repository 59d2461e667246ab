"""The call's records as they go out: one per turn as it ends, and the call's report at hang-up.

A turn's record is written in the background (never on the media path) and is never cancelled:
the call's report waits, bounded, for the last turns' records before it goes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..timeline import TurnTimeline
from .history import Conversation
from .ports import CallReport, CallReporter, TurnRecord

log = logging.getLogger(__name__)

REPORT_TIMEOUT_S = 10.0
"""How long a call's end waits for its last turn records to be stored."""


class CallRecords:
    def __init__(self, reporter: CallReporter) -> None:
        self.reporter = reporter
        self.call_control_id: str | None = None
        self.turns = 0
        self._pending: set[asyncio.Task[Any]] = set()

    def turn(self, conversation: Conversation, caller_text: str, agent_text: str, *, interrupted: bool,
             timeline: TurnTimeline | None, usage: dict[str, Any] | None = None) -> None:
        self.turns += 1
        record = TurnRecord(
            index=self.turns, caller_text=caller_text, agent_text=agent_text, interrupted=interrupted,
            timeline=timeline.as_dict() if timeline else {}, history=conversation.for_model()[1:],
            usage=usage or {}, outcome=timeline.outcome if timeline else None,
        )
        task = asyncio.ensure_future(self.reporter.turn(self.call_control_id, record))
        self._pending.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: recording a turn failed", self.call_control_id, exc_info=task.exception())

    async def finished(self, report: CallReport) -> None:
        """The call's report, after the turns' records still on their way (bounded)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=REPORT_TIMEOUT_S)
        try:
            await self.reporter.finished(report)
        except Exception:
            log.exception("call %s: reporting the end of the call failed", self.call_control_id)
