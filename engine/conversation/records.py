"""The call's records as they go out: one per turn as it ends, and the call's report at hang-up.

A reply's end decides what it leaves behind: the words the caller heard, in the history, and
for a reply to the caller's turn (not a fixed line: greeting, filler, apology) a turn record.
A turn's record is written in the background (never on the media path) and is never cancelled:
the call's report waits, bounded, for the last turns' records before it goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..timeline import TurnTimeline
from .history import Conversation
from .ports import CallReport, CallReporter, TurnRecord

if TYPE_CHECKING:
    from .reply import Reply

log = logging.getLogger(__name__)

REPORT_TIMEOUT_S = 10.0
"""How long a call's end waits for its last turn records to be stored."""


class CallRecords:
    def __init__(self, reporter: CallReporter, usage: Callable[[], dict[str, Any]] = dict) -> None:
        self.reporter = reporter
        self.usage = usage
        """The call's usage so far, for each turn's record."""
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

    def reply_played(self, conversation: Conversation, reply: Reply, greeting: str | None) -> None:
        """Heard to its end. (The greeting is part of the conversation; the other fixed lines not.)"""
        text = reply.spoken.text or reply.text
        if reply.fixed_text is None:
            conversation.add_assistant(text)
            self._reply_turn(conversation, reply, text, interrupted=False)
        elif reply.fixed_text == greeting:
            conversation.add_assistant(text)

    def reply_cut_off(self, conversation: Conversation, reply: Reply, heard_ms: float) -> str | None:
        """The caller talked over the reply: it is kept as far as they heard it. Unless they went
        on before hearing a word of a reply to their turn: then what they said before and what
        they say now are one turn, and the text of the first (returned) is still to be answered."""
        heard = reply.spoken.heard(heard_ms)
        if heard or reply.fixed_text is not None or not conversation.take_back_user(reply.user_text):
            conversation.add_assistant(heard, interrupted=True)
            self._reply_turn(conversation, reply, heard, interrupted=True)
            return None
        return reply.user_text

    def reply_hung_up(self, conversation: Conversation, reply: Reply, now: float) -> None:
        """The call ended with the reply in flight: kept as far as the caller heard it, as for a
        barge-in, if it was speaking."""
        if reply.speaking and reply.fixed_text is None:
            heard = reply.heard_by(now)
            conversation.add_assistant(heard, interrupted=True)
            self._reply_turn(conversation, reply, heard, interrupted=True)

    def _reply_turn(self, conversation: Conversation, reply: Reply, agent_text: str, *, interrupted: bool) -> None:
        self.turn(conversation, reply.user_text, agent_text, interrupted=interrupted, timeline=reply.timeline,
                  usage=self.usage())

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
