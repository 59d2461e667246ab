"""The reply in flight as the policy sees it: its id, its words, its retry and its tool filler.

The agent holds the reply itself (provider streams, audio); this is the bookkeeping the turn
rules consult. Sans-IO: commands go to the outbox shared through :class:`~.timers.Timers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...turn_outcome import Speculation
from .events import CommitReply, DropReply, FailCall, SayFiller, StartReply, Timer
from .timers import Timers
from .words import same_words


class SpeculationStats:
    __slots__ = ("started", "kept", "cancelled", "restarted")

    def __init__(self) -> None:
        self.started = self.kept = self.cancelled = self.restarted = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class ReplyView:
    """What the policy knows of the reply in flight (the agent holds the reply itself)."""

    utterance_id: int
    user_text: str
    finals_used: int
    speculative: bool
    committed: bool
    fixed_text: str | None = None
    attempt: int = 0
    speaking: bool = False
    audio_ready: bool = False
    """Its first audio is in (held, while speculative): a commit plays it at once."""
    filler_said: bool = False


class Replies:
    """At most one reply in flight (:attr:`current`). Failures: a failed reply is retried once
    (with the filler line when its turn was committed); a second failure fails the call. Tool
    filler: a tool running longer than ``tool_filler_after_s`` gets the filler line, once per
    reply (the policy says when the caller is talking, and then it is not said)."""

    __slots__ = ("current", "speculation", "tool_filler_after_s", "_timers", "_next_utterance", "_filler_for")

    def __init__(self, timers: Timers, tool_filler_after_s: float) -> None:
        self.current: ReplyView | None = None
        self.speculation = SpeculationStats()
        self.tool_filler_after_s = tool_filler_after_s
        self._timers = timers
        self._next_utterance = 1
        self._filler_for: int | None = None

    def new_utterance_id(self) -> int:
        uid = self._next_utterance
        self._next_utterance += 1
        return uid

    def start(self, user_text: str, finals_used: int, *, speculative: bool, committed: bool,
              fixed_text: str | None = None, attempt: int = 0) -> ReplyView:
        uid = self.new_utterance_id()
        self.current = ReplyView(uid, user_text, finals_used, speculative, committed, fixed_text, attempt)
        self._timers.out.append(StartReply(uid, user_text, speculative, committed, fixed_text, attempt))
        return self.current

    def drop(self, reason: str) -> None:
        reply = self.current
        if reply is not None:
            self._forget()
            self._timers.out.append(DropReply(reply.utterance_id, reason))

    def speculation_on(self, text: str) -> Speculation:
        """What committing the turn's ``text`` makes of the reply in flight: a speculative one on
        the same words is kept, one on other words restarted (none: no words, or no such reply)."""
        reply = self.current
        if not text or reply is None or reply.fixed_text is not None or reply.committed:
            return Speculation.NONE
        return Speculation.KEPT if same_words(reply.user_text, text) else Speculation.RESTARTED

    def answer(self, text: str, finals_used: int, speculation: Speculation) -> None:
        """The committed turn's answer (``speculation``: :meth:`speculation_on` its ``text``): the
        speculative reply kept, or a new reply, replacing one not yet heard."""
        reply = self.current
        if reply is not None and speculation is Speculation.KEPT:
            self.speculation.kept += 1
            reply.finals_used = finals_used
            reply.committed = True
            self._timers.out.append(CommitReply(reply.utterance_id))
            return
        if reply is not None and speculation is Speculation.RESTARTED:
            self.speculation.restarted += 1
            self.drop("the committed words differ")
        elif reply is not None and not reply.speaking and reply.fixed_text is None:
            self.drop("a longer turn replaces it")
        self.start(text, finals_used, speculative=False, committed=True)

    def drop_stale_speculation(self, transcript: str) -> None:
        """The caller went on and the transcript has their new words: a speculative reply to the
        text before them will not be spoken."""
        reply = self.current
        if (reply is not None and reply.speculative and not reply.committed and reply.fixed_text is None
                and transcript and not same_words(reply.user_text, transcript)):  # (no words: none new)
            self.speculation.cancelled += 1
            self.drop("the caller's words went on")

    def _forget(self) -> None:
        self.current = None
        self._timers.cancel(Timer.TOOL_FILLER)

    def _is_current(self, utterance_id: int | None) -> ReplyView | None:
        reply = self.current
        return reply if reply is not None and reply.utterance_id == utterance_id else None

    def speaking(self, utterance_id: int) -> ReplyView | None:
        """Its first audio went out: returns the reply when that is news."""
        reply = self._is_current(utterance_id)
        if reply is None or reply.speaking:
            return None
        reply.speaking = True
        return reply

    def audio_ready(self, utterance_id: int) -> ReplyView | None:
        """Its first audio arrived (held if speculative): returns the reply when that is news."""
        reply = self._is_current(utterance_id)
        if reply is None or reply.audio_ready:
            return None
        reply.audio_ready = True
        return reply

    def barged_in(self, utterance_id: int | None) -> bool:
        """The caller cut it off: it is over (its words, if any, the policy keeps)."""
        if self._is_current(utterance_id) is None:
            return False
        self._forget()
        return True

    def playout_done(self, utterance_id: int) -> None:
        if self._is_current(utterance_id) is not None:
            self._forget()

    def failed(self, utterance_id: int, error: str) -> None:
        reply = self._is_current(utterance_id)
        if reply is None:
            return
        if reply.attempt == 0 and not reply.speaking:
            self._forget()
            self._timers.out.append(DropReply(reply.utterance_id, f"failed ({error}); retried once"))
            if reply.committed:
                self._timers.out.append(SayFiller(self.new_utterance_id(), "retry"))
            # (words heard since it started are not in it: its finals_used stays)
            self.start(reply.user_text, reply.finals_used, speculative=reply.speculative,
                       committed=reply.committed, fixed_text=reply.fixed_text, attempt=1)
        else:
            self._timers.out.append(FailCall(f"provider failure: {error}"))

    def failing(self, reason: str, apology_id: int | None) -> None:
        self.drop(f"the call is failing: {reason}")
        if apology_id is not None:  # its playout end is what the hang-up waits for
            self.current = ReplyView(apology_id, "", 0, False, True, "apology", -1, speaking=True)

    def tool_started(self, utterance_id: int, now: float) -> None:
        reply = self._is_current(utterance_id)
        after = self.tool_filler_after_s
        if reply is not None and after > 0 and not reply.filler_said:
            self._filler_for = utterance_id
            self._timers.start(Timer.TOOL_FILLER, now + after)

    def tool_finished(self, utterance_id: int) -> None:
        if self._filler_for == utterance_id:
            self._timers.cancel(Timer.TOOL_FILLER)

    def tool_filler_due(self, *, caller_talking: bool) -> None:
        reply = self.current
        if (reply is not None and reply.utterance_id == self._filler_for and not reply.filler_said
                and not caller_talking):
            reply.filler_said = True
            self._timers.out.append(SayFiller(reply.utterance_id, "tool"))
