"""The turn policy as a sans-IO state machine: events in, commands out, time passed in.

:class:`TurnPolicy` holds everything about whose turn it is; it never touches a provider, a
socket or a clock. The rules, each tested in ``tests/engine/conversation/test_turn_policy.py``:

* **States.** :class:`CallerTurn` is the caller's turn as the agent sees it: ``IDLE`` (none
  pending), ``SPEAKING``, ``PAUSED`` (after the tentative end), ``ENDED`` (over, its text not yet
  committed: a final is still owed) and ``HOLDING`` (over on words that read unfinished).
* **Speculation.** At the tentative end the recogniser is asked to finalize and, when the text
  so far reads complete (``judge_text``), a reply starts on it with its audio held. New words
  drop it; a final that changes the text restarts it; the commit keeps it when the words match.
* **Commit.** A turn commits once it has ended and no final is owed: the Finalize answered, or
  (engines that cannot finalize) the final that follows the caller's voice. The end is the VAD's,
  the recogniser's own (it heard the speech end while the VAD, in babble, did not), or noise that
  keeps the VAD on without new words. A final owed past ``final_wait_s`` is not waited for: the
  turn commits without it, and the late final, whenever it comes (even while the reply plays),
  joins the next turn. It is never an error.
* **Hold.** Text that reads unfinished waits ``incomplete_turn_hold_ms`` more (unsure: half);
  speech meanwhile merges the turns.
* **One answer per turn.** A caller who goes on before hearing the reply gets one merged turn;
  a turn already committed is not committed again when the VAD catches up.
* **Barge-in.** A barge-in waits (bounded) for words where the recogniser sends them as they
  come; sound without words resumes the held reply. A backchannel's words are discarded.
* **Keys** end a sequence on its terminator, its length or a pause, and commit like words.
* **Tool filler.** A tool running longer than ``tool_filler_after_s`` gets the filler line, once
  per reply, and never while the caller is talking.
* **Failures.** A failed reply is retried once (with the filler line when its turn was
  committed); a second failure fails the call.

Every reply dropped and every text discarded says why (:class:`DropReply`, :class:`DiscardText`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..dtmf import DtmfCollector, GatherConfig
from ..turn_completion import Verdict, hold_ms, judge_text, punctuation_verdict
from .events import (
    BargeIn, BargeInPending, BargeInRejected, CancelTimer, Command, Commit, CommitReply, ConfirmBargeIn,
    DiscardText, DropReply, Event, FailCall, Failing, FinalizeStt, Greet, KeyPressed, KeysEntered, KeysHeard,
    PlayoutDone, ReplyFailed, ReplySpeaking, ResumeAfterHold, SayFiller, SpeechResumed, SpeechStarted, StampTurn,
    StartReply, StartTimer, SttReady, Stopped, TentativeEnd, Timer, TimerFired, ToolFinished, ToolStarted,
    Transcribed, TurnEnded, TurnOver, VadBargeIn,
)
from .words import same_words, without_tags, word_count

NOISE = "noise kept the VAD on without new words"
RECOGNISER_END = "the recogniser heard the speech end"
SPEECH_FINAL_TRUST_S = 0.6
"""The VAD must have heard speech this long for the recogniser's speech_final (after its own
silence window, 500 ms at Telnyx's default) to overrule it."""


class CallerTurn(enum.Enum):
    IDLE = "idle"
    SPEAKING = "speaking"
    PAUSED = "paused"
    ENDED = "ended"
    HOLDING = "holding"


_OPEN = (CallerTurn.SPEAKING, CallerTurn.PAUSED)
_OVER = (CallerTurn.ENDED, CallerTurn.HOLDING)


@dataclass(frozen=True, slots=True)
class TurnConfig:
    speculative: bool = True
    incomplete_turn_hold_ms: int = 700
    barge_in_words_wait_s: float = 0.6
    final_wait_s: float = 0.8
    """After the end of turn, the longest wait for a final the recogniser owes."""
    can_finalize: bool = True
    """The recogniser answers a Finalize (Deepgram); otherwise finals come on its own segmentation."""
    interim_results: bool = True
    """Words come while the caller talks, so a barge-in can wait for them."""
    tool_filler_after_s: float = 1.5
    """A tool running this long gets the filler line (0: never)."""
    gather: GatherConfig = GatherConfig()


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
    filler_said: bool = False


class TurnPolicy:
    """One call's turn-taking. Feed :meth:`handle` events; carry out the commands it returns."""

    def __init__(self, config: TurnConfig = TurnConfig()) -> None:
        self.config = config
        self.turn = CallerTurn.IDLE
        self.reply: ReplyView | None = None
        self.finals: list[str] = []
        self.interim = ""
        self.final_owed = False
        """A final is owed (after a Finalize, or since the caller's voice began where the recogniser
        cannot finalize): the turn does not commit on text that is still coming."""
        self.late_final_owed = False
        """A turn committed without its final: take that final when it comes."""
        self.barge_in_deferred = False
        self.failing = False
        self.stopped = False
        self.stt_ready = False
        self.speculation = SpeculationStats()
        self._closed_by_recogniser = False  # the recogniser ended a turn the VAD still holds open
        self._discard_next_final = False
        self._words_at_tentative = 0
        self._empty_flaps = 0
        self._voice_since = 0.0  # when the VAD's current stretch of caller speech began
        self._turn_since = 0.0  # ... and when its current turn began (pauses within it aside)
        self._heard_texts = 0  # transcripts with words so far (interim or final)
        self._texts_at_pending: int | None = None  # ... when the caller began over the agent
        self._timers: dict[Timer, float] = {}
        self._filler_for: int | None = None
        self._dtmf = DtmfCollector(config.gather)
        self._next_utterance = 1
        self._out: list[Command] = []
        self._now = 0.0  # the latest event's time

    def reconfigure(self, config: TurnConfig) -> None:
        """The call's own agent settings are known (its setup resolved)."""
        self.config = config
        self._dtmf = DtmfCollector(config.gather)

    # -- the surface ------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """listening, thinking (a reply in the making) or speaking."""
        reply = self.reply
        return "listening" if reply is None else ("speaking" if reply.speaking else "thinking")

    @property
    def transcript(self) -> str:
        """The caller's words not yet answered: the finals, then the latest interim."""
        parts = self.finals + [self.interim] if self.interim else self.finals
        return " ".join(parts).strip()

    def new_utterance_id(self) -> int:
        uid = self._next_utterance
        self._next_utterance += 1
        return uid

    def timer_deadline(self, timer: Timer) -> float | None:
        return self._timers.get(timer)

    def handle(self, event: Event) -> list[Command]:
        out = self._out = []
        now = getattr(event, "now", None)
        if now is not None:
            self._now = now
        if not self.stopped:
            handler = _HANDLERS[type(event)]
            handler(self, event)
        self._out = []
        return out

    # -- VAD --------------------------------------------------------------------------------

    def _speech_started(self, event: SpeechStarted) -> None:
        self._voice_since = self._turn_since = event.now
        self._owe_final()
        self.turn = CallerTurn.SPEAKING
        self._closed_by_recogniser = False
        self._empty_flaps = 0
        self._discard_next_final = False
        self._cancel(Timer.FINAL_WAIT)
        self._cancel(Timer.HOLD)
        reply = self.reply
        if reply is not None and not reply.speaking and reply.fixed_text is None:
            # The caller goes on before hearing anything: one merged turn, not two replies.
            if reply.speculative and not reply.committed:
                self.speculation.cancelled += 1
            self._drop("the caller went on before hearing it")

    def _tentative_end(self, event: TentativeEnd) -> None:
        if self.turn is not CallerTurn.SPEAKING:
            return  # the turn was ended already (by the recogniser, or as noise): a pause in that
        self.turn = CallerTurn.PAUSED
        if self._noise_keeps_turn_open():
            self._end_turn(NOISE)
            self._maybe_commit(NOISE)
            return
        self._finalize()
        reply = self.reply
        if self.config.speculative and not self.failing and (reply is None or reply.fixed_text is None):
            text = self.transcript
            self._drop_stale_speculation()
            # (Without Finalize and with a final owed, the text lacks the words just said: the
            # speculation starts when their final comes, see _speculate_on_final.)
            if (self.reply is None and self._worth_speculating(text)
                    and (self.config.can_finalize or not self.final_owed)):
                self.speculation.started += 1
                self._start_reply(text, speculative=True, committed=False)

    def _speech_resumed(self, event: SpeechResumed) -> None:
        # A speculative reply lives on (its audio held) until the caller's new words show up in a
        # transcript: in noise, "speech" after a pause is often no words at all, and the turn then
        # ends on the text it was started on.
        self._voice_since = event.now
        self._owe_final()
        if self.turn is CallerTurn.PAUSED:
            self.turn = CallerTurn.SPEAKING

    def _turn_ended(self, event: TurnEnded) -> None:
        if self.barge_in_deferred:
            self._resume_after_noise()  # the "speech" over the reply ended without a word
        if self._closed_by_recogniser:
            # The recogniser ended (and committed) this turn already: the VAD catching up must
            # not commit it again, restarting the reply.
            self._closed_by_recogniser = False
            return
        if self.turn not in (CallerTurn.SPEAKING, CallerTurn.PAUSED, CallerTurn.ENDED):
            return  # committed already (noise, keys) or holding: one answer per turn
        self._end_turn("end of turn")
        if not self.final_owed and not self.finals and self.interim:
            self._finalize()  # no tentative end came (config): finalize now
        self._start_timer(Timer.FINAL_WAIT, event.now + self.config.final_wait_s)
        self._maybe_commit("end of turn")

    # -- barge-in ---------------------------------------------------------------------------

    def _barge_in_pending(self, event: BargeInPending) -> None:
        # The session holds the reply while the VAD makes up its mind; if the recogniser hears
        # nothing within the wait, it is noise and the reply goes on.
        self._texts_at_pending = self._heard_texts
        if self.config.interim_results:
            self._start_timer(Timer.NOISE, event.now + self.config.barge_in_words_wait_s)

    def _barge_in_rejected(self, event: BargeInRejected) -> None:
        self._texts_at_pending = None
        self._cancel(Timer.NOISE)
        # A backchannel ("uh-huh") over the agent: not a turn. Have its words finalized now and
        # drop them, so they do not become a turn of their own later.
        if self.turn not in _OPEN:
            self._finalize()
            self._discard_next_final = True

    def _vad_barge_in(self, event: VadBargeIn) -> None:
        """Drop the reply only once the recogniser has heard words in the caller's sound: street
        noise or babble can keep a VAD on for seconds, and the reply would be lost to it. (Without
        interim results no words come while the caller talks: the VAD alone decides.)"""
        self.barge_in_deferred = False
        if (not self.stt_ready or self._texts_at_pending is None or not self.config.interim_results
                or self._heard_texts > self._texts_at_pending):
            return
        self.barge_in_deferred = True
        self._start_timer(Timer.NOISE, event.now + self.config.barge_in_words_wait_s)

    def _barge_in(self, event: BargeIn) -> None:
        self._texts_at_pending = None
        self.barge_in_deferred = False
        self._cancel(Timer.NOISE)
        reply = self.reply
        if reply is None or reply.utterance_id != event.utterance_id:
            return
        if event.returned_text:
            self.finals.insert(0, event.returned_text)
        self.reply = None
        self._cancel(Timer.TOOL_FILLER)

    def _noise_timer(self, now: float) -> None:
        pending = self._texts_at_pending
        if pending is not None and self._heard_texts == pending:
            self.barge_in_deferred = False
            self._out.append(ResumeAfterHold())

    def _resume_after_noise(self) -> None:
        self._cancel(Timer.NOISE)
        self.barge_in_deferred = False
        self._out.append(ResumeAfterHold())

    # -- transcripts ------------------------------------------------------------------------

    def _transcribed(self, event: Transcribed) -> None:
        text = event.text.strip()
        if text:
            self._heard_texts += 1
            if self.barge_in_deferred:  # words while a barge-in waits for them: it is one
                self._cancel(Timer.NOISE)
                self.barge_in_deferred = False
                self._out.append(ConfirmBargeIn())
        turn = self.turn
        accepting = turn is not CallerTurn.IDLE or self.mode != "speaking" or self.late_final_owed
        if not event.is_final:
            if accepting:
                self.interim = text
                if text:
                    self._drop_stale_speculation()
            return
        # A recogniser that segments on its own finalizes only after silence: a final that lands
        # while the caller is speaking is for earlier words, and the newer are still owed.
        if self.config.can_finalize or turn is not CallerTurn.SPEAKING:
            self.final_owed = False
        self.late_final_owed = False
        self.interim = ""
        if self._discard_next_final and turn not in _OPEN:
            self._discard_next_final = False
            if text:
                self._out.append(DiscardText(text, "a backchannel over the agent"))
            return
        if text and accepting:
            self.finals.append(text)
            if turn is not CallerTurn.PAUSED:
                self._drop_stale_speculation()
            if self.failing:
                pass
            elif turn is CallerTurn.IDLE and self.reply is None:
                # Heard words the VAD did not call a turn (quiet speech): answer them anyway.
                self._end_turn("words without a VAD turn")
            elif turn is CallerTurn.PAUSED and self.config.speculative and (
                    self.config.can_finalize or not self._recogniser_ends_turn(event)):
                self._speculate_on_final()
            elif self._recogniser_ends_turn(event):
                # The recogniser's own endpointing says the speech is over while the VAD has heard
                # speech all along (babble or loud noise can keep it on): trust it. With a
                # finals-only engine this holds in the VAD's flapping pauses too.
                self._end_turn(RECOGNISER_END)
                self._closed_by_recogniser = True
                self.final_owed = False  # its final covers what it heard
                self._maybe_commit(RECOGNISER_END)
                return
        elif text:
            self._out.append(DiscardText(text, "heard while the agent spoke, outside any turn"))
        self._maybe_commit("the final came")

    def _recogniser_ends_turn(self, event: Transcribed) -> bool:
        """Whether a final ends the turn the VAD holds open. It must say the recogniser heard the
        speech end (Deepgram marks it ``speech_final``; an engine that cannot finalize sends
        finals only after its own silence window), and the VAD must have heard "speech" all
        through that silence: Deepgram's speech_final comes soon after its silence, so the VAD's
        stretch must be older than SPEECH_FINAL_TRUST_S; a finals-only engine's final reports a
        silence up to its lag ago, so the turn (pauses included) must be older than that."""
        if self.turn not in _OPEN or self.mode == "speaking":
            return False
        if self.config.can_finalize:
            return event.speech_final and event.now - self._voice_since >= SPEECH_FINAL_TRUST_S
        return event.now - self._turn_since >= max(SPEECH_FINAL_TRUST_S, self.config.final_wait_s)

    def _drop_stale_speculation(self) -> None:
        """The caller went on and the transcript has their new words: a speculative reply to the
        text before them will not be spoken."""
        reply = self.reply
        if (reply is not None and reply.speculative and not reply.committed and reply.fixed_text is None
                and not same_words(reply.user_text, self.transcript)):
            self.speculation.cancelled += 1
            self._drop("the caller's words went on")

    def _speculate_on_final(self) -> None:
        """The final for the tentative end's finalize arrived before the turn ended: start (or
        correct) the speculative reply now, with text that will not change."""
        text = self.transcript
        reply = self.reply
        worth = self._worth_speculating(text)
        if reply is not None:
            if reply.fixed_text is not None or reply.committed or same_words(reply.user_text, text):
                return
            if worth:
                self.speculation.restarted += 1
            else:
                self.speculation.cancelled += 1
            self._drop("the final changed the words")
        elif worth:
            self.speculation.started += 1
        if worth:
            self._start_reply(text, speculative=True, committed=False)

    def _worth_speculating(self, text: str) -> bool:
        """Only text the turn can end with: text the hold would keep open is nearly always a
        caller pausing mid-sentence, and each cancelled reply costs an LLM request."""
        return bool(text) and (
            not self.config.incomplete_turn_hold_ms or judge_text(text) is Verdict.COMPLETE)

    def _noise_keeps_turn_open(self) -> bool:
        """The VAD keeps hearing "speech" the recogniser turns into no new words, pause after
        pause (babble, loud noise): the caller is done. Real speech adds words at every pause,
        because each tentative end asks the recogniser to finalize."""
        text = self.transcript
        words = word_count(text)
        # Only a pause whose finalize was answered counts: until then the recogniser has had
        # no chance to add the words.
        flapped = words > 0 and words == self._words_at_tentative and not self.final_owed
        self._empty_flaps = self._empty_flaps + 1 if flapped else 0
        self._words_at_tentative = words
        # Final punctuation only: a pause inside a line flaps alike, and words that read
        # finished there would end the turn early.
        words_only = without_tags(text)
        return self._empty_flaps >= 2 and bool(words_only) and punctuation_verdict(words_only) is Verdict.COMPLETE

    def _finalize(self) -> None:
        if self.stt_ready:
            if self.config.can_finalize:
                self.final_owed = True
            self._out.append(FinalizeStt())

    def _owe_final(self) -> None:
        """The caller's voice (re)started: a recogniser that cannot finalize owes a final for it."""
        if not self.config.can_finalize:
            self.final_owed = True

    # -- committing -------------------------------------------------------------------------

    def _end_turn(self, reason: str) -> None:
        self.turn = CallerTurn.ENDED
        self._out.append(TurnOver(reason))

    def _maybe_commit(self, reason: str) -> None:
        if self.turn is CallerTurn.ENDED and not self.final_owed:
            self._commit(reason, forced=False)

    def _commit(self, reason: str, *, forced: bool, hold_over: bool = False) -> None:
        """The caller's turn is over and its transcript known: answer it (once)."""
        if self.turn not in _OVER:
            return
        if self.failing:
            self.turn = CallerTurn.IDLE
            return
        if self.turn is CallerTurn.HOLDING and not hold_over:
            return
        text = self.transcript
        hold = hold_ms(judge_text(text), self.config.incomplete_turn_hold_ms) if text else 0
        if hold and not hold_over:
            # Mid-sentence (or maybe): a moment more. A speculative reply keeps preparing; speech
            # cancels the hold and merges the turn.
            self.turn = CallerTurn.HOLDING
            self._cancel(Timer.FINAL_WAIT)
            self._start_timer(Timer.HOLD, self._now + hold / 1000)
            if self.reply is None and self.config.speculative:
                # Silent for a whole end of turn already: likely enough done that the reply
                # should be ready when the hold runs out.
                self.speculation.started += 1
                self._start_reply(text, speculative=True, committed=False)
            return
        self.turn = CallerTurn.IDLE
        self._cancel(Timer.FINAL_WAIT)
        self._cancel(Timer.HOLD)
        if self.final_owed:
            # Committed without the final it waited for: when it comes, even while the reply
            # plays, its words are kept for the next turn instead of being dropped.
            self.late_final_owed = True
            self.final_owed = False
        reply = self.reply
        if text and reply is not None and reply.speaking:
            # Words that ended a turn while the agent talks and the caller was not confirmed as
            # barging in (a late final, noise around it): never a second voice over the first.
            # They wait for the caller's next turn.
            return
        self._out.append(Commit(text, forced, reason))
        if not text:
            # Noise, a cough, or speech the recogniser dropped: nothing to answer.
            if reply is not None and reply.speculative and not reply.committed:
                self.speculation.cancelled += 1
                self._drop("the turn had no words")
            return
        if reply is not None and reply.fixed_text is None and not reply.committed:
            if same_words(reply.user_text, text):
                self.speculation.kept += 1
                reply.finals_used = len(self.finals)
                reply.committed = True
                self._out.append(CommitReply(reply.utterance_id))
                return
            self.speculation.restarted += 1
            self._drop("the committed words differ")
        elif reply is not None and not reply.speaking and reply.fixed_text is None:
            self._drop("a longer turn replaces it")
        self._start_reply(text, speculative=False, committed=True)

    # -- keys -------------------------------------------------------------------------------

    def _key_pressed(self, event: KeyPressed) -> None:
        done = self._dtmf.press(event.digit, event.now)
        self._cancel(Timer.DTMF)
        if done is not None:
            self._out.append(KeysEntered(done))
        elif self._dtmf.deadline is not None:
            self._start_timer(Timer.DTMF, self._dtmf.deadline)

    def _keys_heard(self, event: KeysHeard) -> None:
        self.finals.append(event.text)
        if self.turn not in _OPEN and (self.reply is None or not self.reply.speaking):
            if self.turn is not CallerTurn.HOLDING:
                self._end_turn("keys")
            self.final_owed = False
            self._commit("keys", forced=False)

    # -- timers -----------------------------------------------------------------------------

    def _timer_fired(self, event: TimerFired) -> None:
        if self._timers.get(event.timer) is None:
            return  # cancelled meanwhile
        del self._timers[event.timer]
        timer = event.timer
        if timer is Timer.FINAL_WAIT:
            if self.turn is CallerTurn.ENDED:
                self._commit("the final is late", forced=True)
        elif timer is Timer.HOLD:
            if self.turn is CallerTurn.HOLDING:
                self._out.append(StampTurn("turn_end", event.now))  # the hold was endpointing
                self._commit("the hold ran out", forced=True, hold_over=True)
        elif timer is Timer.NOISE:
            self._noise_timer(event.now)
        elif timer is Timer.DTMF:
            digits = self._dtmf.expire(event.now)
            if digits:
                self._out.append(KeysEntered(digits))
        elif timer is Timer.TOOL_FILLER:
            reply = self.reply
            if (reply is not None and reply.utterance_id == self._filler_for and not reply.filler_said
                    and self.turn not in _OPEN):
                reply.filler_said = True
                self._out.append(SayFiller(reply.utterance_id, "tool"))

    def _start_timer(self, timer: Timer, deadline: float) -> None:
        self._timers[timer] = deadline
        self._out.append(StartTimer(timer, deadline))

    def _cancel(self, timer: Timer) -> None:
        if self._timers.pop(timer, None) is not None:
            self._out.append(CancelTimer(timer))

    # -- replies ----------------------------------------------------------------------------

    def _start_reply(self, user_text: str, *, speculative: bool, committed: bool,
                     fixed_text: str | None = None, attempt: int = 0) -> None:
        uid = self.new_utterance_id()
        self.reply = ReplyView(uid, user_text, len(self.finals), speculative, committed, fixed_text, attempt)
        self._out.append(StartReply(uid, user_text, speculative, committed, fixed_text, attempt))

    def _drop(self, reason: str) -> None:
        reply = self.reply
        if reply is not None:
            self.reply = None
            self._cancel(Timer.TOOL_FILLER)
            self._out.append(DropReply(reply.utterance_id, reason))

    def _greet(self, event: Greet) -> None:
        if event.text and self.reply is None:
            self._start_reply("", speculative=False, committed=True, fixed_text=event.text)

    def _reply_speaking(self, event: ReplySpeaking) -> None:
        reply = self.reply
        if reply is None or reply.utterance_id != event.utterance_id or reply.speaking:
            return
        reply.speaking = True
        if reply.fixed_text is None:  # these words are answered now (the history has them)
            del self.finals[: reply.finals_used]
            self.interim = ""

    def _playout_done(self, event: PlayoutDone) -> None:
        reply = self.reply
        if reply is not None and reply.utterance_id == event.utterance_id:
            self.reply = None
            self._cancel(Timer.TOOL_FILLER)

    def _reply_failed(self, event: ReplyFailed) -> None:
        reply = self.reply
        if reply is None or reply.utterance_id != event.utterance_id:
            return
        if reply.attempt == 0 and not reply.speaking:
            self.reply = None
            self._cancel(Timer.TOOL_FILLER)
            self._out.append(DropReply(reply.utterance_id, f"failed ({event.error}); retried once"))
            if reply.committed:
                self._out.append(SayFiller(self.new_utterance_id(), "retry"))
            self._start_reply(reply.user_text, speculative=reply.speculative, committed=reply.committed,
                              fixed_text=reply.fixed_text, attempt=1)
            self.reply.finals_used = reply.finals_used  # type: ignore[union-attr]  # (words since: not in it)
        else:
            self._out.append(FailCall(f"provider failure: {event.error}"))

    def _failing(self, event: Failing) -> None:
        self.failing = True
        self._drop(f"the call is failing: {event.reason}")
        self._cancel(Timer.FINAL_WAIT)
        self._cancel(Timer.HOLD)
        if self.turn in _OVER:
            self.turn = CallerTurn.IDLE
        if event.apology_id is not None:  # its playout end is what the hang-up waits for
            self.reply = ReplyView(event.apology_id, "", 0, False, True, "apology", -1, speaking=True)

    def _tool_started(self, event: ToolStarted) -> None:
        reply = self.reply
        after = self.config.tool_filler_after_s
        if reply is not None and reply.utterance_id == event.utterance_id and after > 0 and not reply.filler_said:
            self._filler_for = event.utterance_id
            self._start_timer(Timer.TOOL_FILLER, event.now + after)

    def _tool_finished(self, event: ToolFinished) -> None:
        if self._filler_for == event.utterance_id:
            self._cancel(Timer.TOOL_FILLER)

    def _stt_ready(self, event: SttReady) -> None:
        self.stt_ready = event.ready

    def _stopped(self, event: Stopped) -> None:
        self.stopped = True
        for timer in list(self._timers):
            self._cancel(timer)


_HANDLERS = {
    SpeechStarted: TurnPolicy._speech_started,
    TentativeEnd: TurnPolicy._tentative_end,
    SpeechResumed: TurnPolicy._speech_resumed,
    TurnEnded: TurnPolicy._turn_ended,
    BargeInPending: TurnPolicy._barge_in_pending,
    BargeInRejected: TurnPolicy._barge_in_rejected,
    VadBargeIn: TurnPolicy._vad_barge_in,
    BargeIn: TurnPolicy._barge_in,
    Transcribed: TurnPolicy._transcribed,
    SttReady: TurnPolicy._stt_ready,
    KeyPressed: TurnPolicy._key_pressed,
    KeysHeard: TurnPolicy._keys_heard,
    TimerFired: TurnPolicy._timer_fired,
    ReplySpeaking: TurnPolicy._reply_speaking,
    PlayoutDone: TurnPolicy._playout_done,
    ReplyFailed: TurnPolicy._reply_failed,
    ToolStarted: TurnPolicy._tool_started,
    ToolFinished: TurnPolicy._tool_finished,
    Greet: TurnPolicy._greet,
    Failing: TurnPolicy._failing,
    Stopped: TurnPolicy._stopped,
}
