"""The turn policy as a sans-IO state machine: events in, commands out, time passed in.

:class:`TurnPolicy` holds everything about whose turn it is; it never touches a provider, a
socket or a clock. The rules, each tested in ``tests/engine/conversation/test_turn_policy.py``:

* **States.** :class:`CallerTurn` is the caller's turn as the agent sees it: ``IDLE`` (none
  pending), ``SPEAKING``, ``PAUSED`` (after the tentative end), ``ENDED`` (over, its text not yet
  committed: a final is still owed) and ``HOLDING`` (over on words that read unfinished).
* **Speculation** (:mod:`.speculation`). At the tentative end the recogniser is asked to
  finalize and, when the text so far reads complete, a reply starts on it with its audio held.
  New words drop it; a final that changes the text restarts it; the commit keeps it when the
  words match.
* **Commit.** A turn commits once it has ended and no final is owed: the Finalize answered, or
  (engines that cannot finalize) the final that follows the caller's voice. The end is the VAD's,
  the recogniser's own (it heard the speech end while the VAD, in babble, did not), or noise that
  keeps the VAD on without new words. A final owed past ``final_wait_s`` is not waited for: the
  turn commits without it, and the late final, whenever it comes (even while the reply plays),
  joins the next turn. It is never an error.
* **Confident end.** When the final for a pause is in and its words are surely finished
  (:func:`.endpoint.surely_finished`: a question, the speculative reply on exactly those words)
  and that reply's first audio is in, the media session is asked to end the turn after a
  shorter silence (:class:`EndTurn`; it counts the frames, so speech that resumed first still
  wins); anything less waits for the VAD's end of turn, as before. Only with audio in hand:
  ending sooner gains nothing before the reply can play, and a turn ended early on a reply
  still in the making would leave it to be dropped by noise that follows (a new "turn").
* **Hold.** Text that reads unfinished waits ``incomplete_turn_hold_ms`` more (unsure: half);
  speech meanwhile merges the turns. Where the recogniser gave no final mark, the caller's
  final pitch contour at this pause (``final_contour``; :func:`.turn_completion.judge_turn`)
  ends unsure words on a fall and holds complete ones on a continuation rise; speculation
  follows the same verdict.
* **One answer per turn.** A caller who goes on before hearing the reply gets one merged turn;
  a turn already committed is not committed again when the VAD catches up.
* **Barge-in** (:mod:`.barge_in`). A barge-in waits (bounded) for words where the recogniser
  sends them as they come; sound without words resumes the held reply. A backchannel's words
  are discarded.
* **Keys** (:mod:`.keys`) end a sequence on its terminator, length or a pause; commit like words.
* **Replies** (:mod:`.replies`): one in flight; a failure is retried once; a long tool gets the
  filler line, never while the caller is talking.
* **Ends the VAD does not call** (:mod:`.endpoint`): the recogniser's own, and noise.

The parts are sans-IO too and share the policy's outbox and :class:`~.timers.Timers`.

Every reply dropped, text discarded and turn committed says why (:class:`DropReply`,
:class:`DiscardText`, the :class:`Commit`'s outcome that :mod:`.account` keeps).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from ...prosody import NO_AUDIO, Contour, PauseAudio
from ...turn_outcome import TurnEnd
from .account import TURN_OVER, TurnAccount
from .barge_in import BargeInJudge
from .config import TurnConfig
from .endpoint import NoiseFlaps, recogniser_ends_turn
from .events import (
    BargeIn,
    BargeInPending,
    BargeInRejected,
    Command,
    Commit,
    DiscardText,
    EndTurn,
    Event,
    Failing,
    FinalizeStt,
    Greet,
    KeyPressed,
    KeysHeard,
    PlayoutDone,
    ReplyAudioReady,
    ReplyFailed,
    ReplySpeaking,
    SpeechResumed,
    SpeechStarted,
    StampTurn,
    Stopped,
    SttReady,
    TentativeEnd,
    Timer,
    TimerFired,
    ToolFinished,
    ToolStarted,
    Transcribed,
    TurnEnded,
    TurnOver,
    VadBargeIn,
)
from .keys import Keys
from .replies import Replies, ReplyView
from .speculation import Speculator
from .timers import Timers
from .words import word_count

NOISE = TURN_OVER[TurnEnd.NOISE]
RECOGNISER_END = TURN_OVER[TurnEnd.RECOGNISER]


class CallerTurn(enum.Enum):
    IDLE = "idle"
    SPEAKING = "speaking"
    PAUSED = "paused"
    ENDED = "ended"
    HOLDING = "holding"


_OPEN = (CallerTurn.SPEAKING, CallerTurn.PAUSED)
_OVER = (CallerTurn.ENDED, CallerTurn.HOLDING)


class TurnPolicy:
    """One call's turn-taking. Feed :meth:`handle` events; carry out the commands it returns."""

    def __init__(self, config: TurnConfig | None = None) -> None:
        config = self.config = TurnConfig() if config is None else config
        self.turn = CallerTurn.IDLE
        self._out: list[Command] = []  # the outbox the parts share, for the event being handled
        self._timers = Timers(self._out)
        self.replies = Replies(self._timers, config.tool_filler_after_s)
        self._speculator = Speculator(self.replies)
        self.barge = BargeInJudge(self._timers, config.barge_in_words_wait_s, config.interim_results)
        self.finals: list[str] = []
        self.interim = ""
        self.final_owed = False
        """A final is owed (after a Finalize, or since the caller's voice began where the recogniser
        cannot finalize): the turn does not commit on text that is still coming."""
        self.late_final_owed = False
        """A turn committed without its final: take that final when it comes."""
        self.failing = False
        self.stopped = False
        self.stt_ready = False
        self.speculation = self.replies.speculation
        self._closed_by_recogniser = False  # the recogniser ended a turn the VAD still holds open
        self.account = TurnAccount()  # how the current turn is ending, for its Commit's outcome
        self.ended_sooner = 0
        """Pauses whose words were sure enough to end the turn sooner (:class:`EndTurn`)."""
        self._noise = NoiseFlaps(config.noise_wordless_s)
        self._voice_since = 0.0  # when the VAD's current stretch of caller speech began
        self._turn_since = 0.0  # ... and when its current turn began (pauses within it aside)
        self.keys = Keys(self._timers, config.gather)
        self._now = 0.0  # the latest event's time
        self.opening = True
        """The agent has not been heard yet in this call: the caller is answering the phone."""
        self._guessed = False  # the opening guess ran (once a call)
        self.pause_audio: PauseAudio = NO_AUDIO
        """The caller's audio before the current pause, for its contour; none while they speak."""

    def reconfigure(self, config: TurnConfig) -> None:
        """The call's own agent settings are known (its setup resolved)."""
        self.config = config
        self.keys.reconfigure(config.gather)
        self.replies.tool_filler_after_s = config.tool_filler_after_s
        self.barge.words_wait_s = config.barge_in_words_wait_s
        self.barge.interim_results = config.interim_results
        self._noise.wordless_s = config.noise_wordless_s

    # -- the surface ------------------------------------------------------------------------

    @property
    def reply(self) -> ReplyView | None:
        return self.replies.current

    @property
    def barge_in_deferred(self) -> bool:
        """A confirmed barge-in keeps the reply held until words (or their absence) decide."""
        return self.barge.deferred

    @property
    def mode(self) -> str:
        """listening, thinking (a reply in the making) or speaking."""
        reply = self.reply
        return "listening" if reply is None else ("speaking" if reply.speaking else "thinking")

    @property
    def transcript(self) -> str:
        """The caller's words not yet answered: the finals, then the latest interim."""
        parts = [*self.finals, self.interim] if self.interim else self.finals
        return " ".join(parts).strip()

    def new_utterance_id(self) -> int:
        return self.replies.new_utterance_id()

    def timer_deadline(self, timer: Timer) -> float | None:
        return self._timers.deadline(timer)

    def handle(self, event: Event) -> list[Command]:
        now = getattr(event, "now", None)
        if now is not None:
            self._now = now
        if not self.stopped:
            handler = _HANDLERS[type(event)]
            handler(self, event)
        out = self._out[:]
        self._out.clear()
        return out

    # -- VAD --------------------------------------------------------------------------------

    def _speech_started(self, event: SpeechStarted) -> None:
        self._voice_since = self._turn_since = event.now
        self.pause_audio = NO_AUDIO
        self._owe_final()
        self.turn = CallerTurn.SPEAKING
        self._closed_by_recogniser = False
        self.account.speech()
        self._noise.reset(event.now)
        self.barge.caller_began()
        self._timers.cancel(Timer.FINAL_WAIT)
        self._timers.cancel(Timer.HOLD)
        reply = self.reply
        if reply is not None and not reply.speaking and reply.fixed_text is None:
            # The caller goes on before hearing anything: one merged turn, not two replies.
            if reply.speculative and not reply.committed:
                self.speculation.cancelled += 1
            self.account.merged |= reply.committed  # the turn it answered merges into this one
            self.replies.drop("the caller went on before hearing it")
        if (self.opening and self.config.speculative and self.config.opening_guess and not self.failing
                and not self.transcript and not self._guessed):
            self._guessed = True  # once a call: a noisy line's wordless bursts would each cost one
            self._speculator.unless_one_runs(self.config.opening_guess, len(self.finals))

    def _tentative_end(self, event: TentativeEnd) -> None:
        if self.turn is not CallerTurn.SPEAKING:
            return  # the turn was ended already (by the recogniser, or as noise): a pause in that
        self.turn = CallerTurn.PAUSED
        self.pause_audio = event.audio
        if (self.opening and self.config.can_finalize and not self.final_owed and self.mode != "speaking"
                and not event.quiet_run and self._noise.opening_pause_ends(event.now, self.transcript)):
            self._end_turn(TurnEnd.NOISE)
            self._maybe_commit(NOISE)
            return
        self._finalize(quiet_run=event.quiet_run)
        reply = self.reply
        if self.config.speculative and not self.failing and (reply is None or reply.fixed_text is None):
            self._speculator.at_pause(self.transcript, len(self.finals), self.config, opening=self.opening,
                                      contour=self._contour, final_owed=self.final_owed)

    @property
    def _contour(self) -> Callable[[], Contour] | None:
        """How the caller's voice ended before this pause, read when a verdict needs it."""
        return self.pause_audio.contour if self.config.final_contour else None

    def _speech_resumed(self, event: SpeechResumed) -> None:
        # A speculative reply lives on (its audio held) until the caller's new words show up in a
        # transcript: in noise, "speech" after a pause is often no words at all, and the turn then
        # ends on the text it was started on.
        self._voice_since = event.now
        self.pause_audio = NO_AUDIO
        self._owe_final()
        if self.turn is CallerTurn.PAUSED:
            self.turn = CallerTurn.SPEAKING

    def _turn_ended(self, event: TurnEnded) -> None:
        self.barge.sound_ended()  # a deferred barge-in's "speech" ended without a word
        if self._closed_by_recogniser:
            # The recogniser ended (and committed) this turn already: the VAD catching up must
            # not commit it again, restarting the reply.
            self._closed_by_recogniser = False
            return
        if self.turn not in (CallerTurn.SPEAKING, CallerTurn.PAUSED, CallerTurn.ENDED):
            return  # committed already (noise, keys) or holding: one answer per turn
        self._end_turn(self.account.vad_end(self._voice_since))
        if not self.final_owed and not self.finals and self.interim:
            self._finalize()  # no tentative end came (config): finalize now
        self._timers.start(Timer.FINAL_WAIT, event.now + self.config.final_wait_s)
        self._maybe_commit("end of turn")

    # -- barge-in ---------------------------------------------------------------------------

    def _barge_in_rejected(self, event: BargeInRejected) -> None:
        # A backchannel ("uh-huh") over the agent: not a turn. Have its words finalized now so
        # they are dropped, not made a turn of their own later.
        if self.barge.rejected(backchannel=self.turn not in _OPEN):
            self._finalize()

    def _barge_in(self, event: BargeIn) -> None:
        self.barge.settled()
        if self.replies.barged_in(event.utterance_id) and event.returned_text:
            self.finals.insert(0, event.returned_text)

    # -- transcripts ------------------------------------------------------------------------

    def _transcribed(self, event: Transcribed) -> None:
        self._take_transcript(event)
        # Finals answer the Finalizes in order (the Telnyx relay passes no from_finalize), except
        # a speech_final: the recogniser's own endpointing sent it.
        answer = event.is_final and self.config.can_finalize and not event.speech_final
        if (self._noise.heard(event.now, self.transcript, answer=answer, opening=self.opening)
                and self.turn in _OPEN and self.mode != "speaking"):
            self._end_turn(TurnEnd.NOISE)
            self._maybe_commit(NOISE)

    def _take_transcript(self, event: Transcribed) -> None:
        text = event.text.strip()
        if text:
            self.barge.heard_words()
        if word_count(text) and self.turn is CallerTurn.HOLDING and self._closed_by_recogniser:
            # The recogniser ended the turn on words that read unfinished while the VAD still
            # hears the caller: more words mean they went on. Reopen; the VAD's end decides.
            self.turn, self._closed_by_recogniser = CallerTurn.SPEAKING, False
            self._timers.cancel(Timer.HOLD)
            self.account.speech()
        turn = self.turn
        accepting = turn is not CallerTurn.IDLE or self.mode != "speaking" or self.late_final_owed
        if not event.is_final:
            if accepting:
                self.interim = text
                if text:
                    self.replies.drop_stale_speculation(self.transcript)
            return
        # A recogniser that segments on its own finalizes only after silence: a final that lands
        # while the caller is speaking is for earlier words, and the newer are still owed.
        if self.config.can_finalize or turn is not CallerTurn.SPEAKING:
            self.final_owed = False
        self.late_final_owed = False
        self.interim = ""
        if self.barge.discard_next_final and turn not in _OPEN:
            self.barge.discard_next_final = False
            if text:
                self._out.append(DiscardText(text, "a backchannel over the agent"))
            return
        if text and accepting:
            self.finals.append(text)
            if turn is not CallerTurn.PAUSED:
                self.replies.drop_stale_speculation(self.transcript)
            if self.failing:
                pass
            elif turn is CallerTurn.IDLE and self.reply is None:
                # Heard words the VAD did not call a turn (quiet speech): answer them anyway.
                self._end_turn(TurnEnd.WORDS)
            elif turn is CallerTurn.PAUSED and self.config.speculative and (
                    self.config.can_finalize or not self._recogniser_ends_turn(event)):
                self._speculator.on_final(self.transcript, len(self.finals), self.config, opening=self.opening,
                                          contour=self._contour)
                self._end_sooner()
            elif self._recogniser_ends_turn(event):
                # The recogniser's own endpointing says the speech is over while the VAD has heard
                # speech all along (babble or loud noise can keep it on): trust it. With a
                # finals-only engine this holds in the VAD's flapping pauses too.
                self._end_turn(TurnEnd.RECOGNISER)
                self._closed_by_recogniser = True
                self.final_owed = False  # its final covers what it heard
                self._maybe_commit(RECOGNISER_END)
                return
        elif text:
            self._out.append(DiscardText(text, "heard while the agent spoke, outside any turn"))
        self._maybe_commit("the final came")

    def _recogniser_ends_turn(self, event: Transcribed) -> bool:
        """Whether this final ends the turn the VAD holds open (see :mod:`.endpoint`)."""
        config = self.config
        return self.turn in _OPEN and self.mode != "speaking" and recogniser_ends_turn(
            event.now, speech_final=event.speech_final, can_finalize=config.can_finalize,
            voice_since=self._voice_since, turn_since=self._turn_since, final_wait_s=config.final_wait_s,
            voice_at=event.voice_at, voice_gap_s=config.noise_wordless_s)

    def _end_sooner(self) -> None:
        """The final for this pause is in: if its words are surely done, ask for the shorter end."""
        if (self.config.confident_end and self.turn is CallerTurn.PAUSED and not self.final_owed
                and not self.failing and self._speculator.sure(self.transcript, opening=self.opening)):
            self.ended_sooner += 1
            self.account.sooner_at = self._now
            self._out.append(EndTurn())  # the session's end of turn follows: TurnEnded commits

    def _finalize(self, *, quiet_run: bool = True) -> None:
        if self.stt_ready:
            if self.config.can_finalize:
                self.final_owed = True
                self._noise.asked(self._now, quiet_run=quiet_run)
            self._out.append(FinalizeStt())

    def _owe_final(self) -> None:
        """The caller's voice (re)started: a recogniser that cannot finalize owes a final for it."""
        if not self.config.can_finalize:
            self.final_owed = True

    # -- committing -------------------------------------------------------------------------

    def _end_turn(self, end: TurnEnd) -> None:
        self.turn = CallerTurn.ENDED
        self.account.ended(end)
        self._out.append(TurnOver(TURN_OVER[end]))

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
        hold = 0 if hold_over else self.account.judge(text, self.config.incomplete_turn_hold_ms,
                                                      opening=self.opening, contour=self._contour)
        if hold:
            # Mid-sentence (or maybe): a moment more. A speculative reply keeps preparing; speech
            # cancels the hold and merges the turn.
            self.turn = CallerTurn.HOLDING
            self._timers.cancel(Timer.FINAL_WAIT)
            self._timers.start(Timer.HOLD, self._now + hold / 1000)
            if self.config.speculative:
                self._speculator.unless_one_runs(text, len(self.finals))
            return
        self.turn = CallerTurn.IDLE
        self._timers.cancel(Timer.FINAL_WAIT)
        self._timers.cancel(Timer.HOLD)
        if self.final_owed:
            # Committed without the final it waited for: when it comes, even while the reply
            # plays, its words are kept for the next turn instead of being dropped.
            self.late_final_owed = True
            self.final_owed = False
        reply = self.reply
        if text and reply is not None and (reply.speaking or reply.fixed_text is not None):
            # Words that ended a turn while the agent talks, or before its greeting is heard (a
            # fixed line: the agent's turn already), the caller not confirmed as barging in: never
            # a second reply beside the first. They wait for the caller's next turn.
            return
        spec = self.replies.speculation_on(text)
        self._out.append(Commit(text, forced, reason, self.account.outcome(forced=forced, hold_over=hold_over,
                                                                           speculation=spec)))
        if not text:
            # Noise, a cough, or speech the recogniser dropped: nothing to answer.
            if reply is not None and reply.speculative and not reply.committed:
                self.speculation.cancelled += 1
                self.replies.drop("the turn had no words")
            return
        self.replies.answer(text, len(self.finals), spec)

    # -- keys -------------------------------------------------------------------------------

    def _keys_heard(self, event: KeysHeard) -> None:
        self.finals.append(event.text)
        if self.turn not in _OPEN and (self.reply is None or not self.reply.speaking):
            if self.turn is not CallerTurn.HOLDING:
                self._end_turn(TurnEnd.KEYS)
            self.final_owed = False
            self._commit("keys", forced=False)

    # -- timers -----------------------------------------------------------------------------

    def _timer_fired(self, event: TimerFired) -> None:
        timer = event.timer
        if not self._timers.fired(timer):
            return  # cancelled meanwhile
        if timer is Timer.FINAL_WAIT:
            if self.turn is CallerTurn.ENDED:
                self._commit("the final is late", forced=True)
        elif timer is Timer.HOLD:
            if self.turn is CallerTurn.HOLDING:
                self._out.append(StampTurn("turn_end", event.now))  # the hold was endpointing
                self._commit("the hold ran out", forced=True, hold_over=True)
        elif timer is Timer.NOISE:
            self.barge.noise_timer()
        elif timer is Timer.DTMF:
            self.keys.paused(event.now)
        elif timer is Timer.TOOL_FILLER:
            self.replies.tool_filler_due(caller_talking=self.turn in _OPEN)

    # -- replies ----------------------------------------------------------------------------

    def _start_reply(self, user_text: str, *, speculative: bool, committed: bool,
                     fixed_text: str | None = None) -> None:
        self.replies.start(user_text, len(self.finals), speculative=speculative, committed=committed,
                           fixed_text=fixed_text)

    def _greet(self, event: Greet) -> None:
        if event.text and self.reply is None:
            self._start_reply("", speculative=False, committed=True, fixed_text=event.text)

    def _reply_speaking(self, event: ReplySpeaking) -> None:
        reply = self.replies.speaking(event.utterance_id)
        self.opening = False
        if reply is not None and reply.fixed_text is None:  # these words are answered now
            del self.finals[: reply.finals_used]
            self.interim = ""

    def _reply_audio_ready(self, event: ReplyAudioReady) -> None:
        if self.replies.audio_ready(event.utterance_id) is not None:
            self._end_sooner()

    def _failing(self, event: Failing) -> None:
        self.failing = True
        self.replies.failing(event.reason, event.apology_id)
        self._timers.cancel(Timer.FINAL_WAIT)
        self._timers.cancel(Timer.HOLD)
        if self.turn in _OVER:
            self.turn = CallerTurn.IDLE

    def _stopped(self, event: Stopped) -> None:
        self.stopped = True
        self._timers.cancel_all()


def _stt_ready(policy: TurnPolicy, event: SttReady) -> None:
    policy.stt_ready = event.ready


# Each event's handler: the policy's rule, or (an event that concerns one part alone) the part's.
_HANDLERS: dict[type[Event], Callable[[TurnPolicy, Any], object]] = {
    SpeechStarted: TurnPolicy._speech_started,
    TentativeEnd: TurnPolicy._tentative_end,
    SpeechResumed: TurnPolicy._speech_resumed,
    TurnEnded: TurnPolicy._turn_ended,
    BargeInPending: lambda policy, event: policy.barge.pending(event.now),
    BargeInRejected: TurnPolicy._barge_in_rejected,
    VadBargeIn: lambda policy, event: policy.barge.vad_confirmed(event.now, stt_ready=policy.stt_ready),
    BargeIn: TurnPolicy._barge_in,
    Transcribed: TurnPolicy._transcribed,
    SttReady: _stt_ready,
    KeyPressed: lambda policy, event: policy.keys.press(event.digit, event.now),
    KeysHeard: TurnPolicy._keys_heard,
    TimerFired: TurnPolicy._timer_fired,
    ReplySpeaking: TurnPolicy._reply_speaking,
    ReplyAudioReady: TurnPolicy._reply_audio_ready,
    PlayoutDone: lambda policy, event: policy.replies.playout_done(event.utterance_id),
    ReplyFailed: lambda policy, event: policy.replies.failed(event.utterance_id, event.error),
    ToolStarted: lambda policy, event: policy.replies.tool_started(event.utterance_id, event.now),
    ToolFinished: lambda policy, event: policy.replies.tool_finished(event.utterance_id),
    Greet: TurnPolicy._greet,
    Failing: TurnPolicy._failing,
    Stopped: TurnPolicy._stopped,
}
