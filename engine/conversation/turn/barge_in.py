"""Whether the caller's sound over the agent's audio is a barge-in: words decide, not sound.

Street noise or babble can keep a VAD on for seconds, and a reply dropped for it is lost. So
while the session holds the reply, the judge waits (bounded, ``words_wait_s``) for the
recogniser to hear words in that sound: words confirm the barge-in, none by the deadline and the
held reply resumes. A sound too short for a barge-in (a backchannel, "uh-huh") is not a turn:
its words, once finalized, are discarded. Sans-IO: it only appends commands to the shared outbox
and keeps its one timer (:attr:`Timer.NOISE`) through :class:`~.timers.Timers`.
"""

from __future__ import annotations

from .events import ConfirmBargeIn, ResumeAfterHold, Timer
from .timers import Timers


class BargeInJudge:
    __slots__ = ("words_wait_s", "interim_results", "deferred", "discard_next_final", "_timers",
                 "_heard_texts", "_texts_at_pending")

    def __init__(self, timers: Timers, words_wait_s: float, interim_results: bool) -> None:
        self.words_wait_s = words_wait_s
        self.interim_results = interim_results
        """Words come while the caller talks; without them the VAD alone decides."""
        self.deferred = False
        """A confirmed barge-in waits for words before the reply is dropped."""
        self.discard_next_final = False
        """The next final is a backchannel's words: not a turn."""
        self._timers = timers
        self._heard_texts = 0  # transcripts with words so far (interim or final)
        self._texts_at_pending: int | None = None  # ... when the caller began over the agent

    def heard_words(self) -> None:
        """A transcript with words came: a barge-in waiting for them is one."""
        self._heard_texts += 1
        if self.deferred:
            self._timers.cancel(Timer.NOISE)
            self.deferred = False
            self._timers.out.append(ConfirmBargeIn())

    def pending(self, now: float) -> None:
        """The caller's sound began over the agent's audio (the session holds the reply)."""
        self._texts_at_pending = self._heard_texts
        if self.interim_results:
            self._timers.start(Timer.NOISE, now + self.words_wait_s)

    def rejected(self, *, backchannel: bool) -> bool:
        """That sound ended too soon for a barge-in. With ``backchannel`` (no caller turn open)
        its words are to be dropped: returns whether the policy should have them finalized now."""
        self._texts_at_pending = None
        self._timers.cancel(Timer.NOISE)
        if backchannel:
            self.discard_next_final = True
        return backchannel

    def vad_confirmed(self, now: float, *, stt_ready: bool) -> bool:
        """The VAD confirms a barge-in: whether to keep holding the reply until words decide."""
        self.deferred = False
        if (not stt_ready or self._texts_at_pending is None or not self.interim_results
                or self._heard_texts > self._texts_at_pending):
            return False
        self.deferred = True
        self._timers.start(Timer.NOISE, now + self.words_wait_s)
        return True

    def settled(self) -> None:
        """The barge-in happened: nothing is held any more."""
        self._texts_at_pending = None
        self.deferred = False
        self._timers.cancel(Timer.NOISE)

    def noise_timer(self) -> None:
        """The wait for words ran out: no words since the sound began, so it was noise."""
        pending = self._texts_at_pending
        if pending is not None and self._heard_texts == pending:
            self.deferred = False
            self._timers.out.append(ResumeAfterHold())

    def sound_ended(self) -> None:
        """The "speech" a deferred barge-in waited on ended without a word: resume the reply."""
        if self.deferred:
            self._timers.cancel(Timer.NOISE)
            self.deferred = False
            self._timers.out.append(ResumeAfterHold())

    def caller_began(self) -> None:
        """A new caller turn began: earlier backchannel words no longer pending."""
        self.discard_next_final = False
