"""One call's conversation: media events in, STT -> LLM -> TTS -> playout out.

:class:`CallAgent` is a :class:`~engine.session.MediaListener` that does the call's IO: it owns
the provider streams and the parts that run tools (:mod:`.call_tools`), call control
(:mod:`.call_control`), the reply in flight (:mod:`.reply`) and the records (:mod:`.records`). Whose
turn it is, and what to answer when, is the :class:`~.turn.TurnPolicy`'s to say: the agent turns
what the session and the recogniser report into its events, and carries out its commands
(replies, timers on the event loop, the playout). See :mod:`.turn.policy` for the rules.

Two rules stay here because they are about the call, not the turn:

* **Barge-in.** A reply cut off keeps, in the history, only the words the caller heard (from
  playout accounting and TTS alignment); a pending hang-up or transfer is called off.
* **Failures.** A second provider failure in a row, or a recogniser that cannot be reached, gets
  an apology and a hang-up.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..config import EndpointingConfig
from ..endpointing import EndpointEvent
from ..playout import Interruption
from ..prosody import NO_AUDIO, PauseAudio
from ..protocol import Start
from ..providers.base import ChatModel, SpeechToText, TextToSpeech, ToolCall, Transcript, provider_of
from ..session import MediaListener, MediaSession
from .call_control import CallControl
from .call_tools import CallTools
from .config import AgentProfile
from .dtmf import describe_keys
from .history import Conversation
from .knowledge import TurnKnowledge
from .loop_timers import LoopTimers
from .phrases import PhraseCache
from .ports import CallActions, CallReport, CallReporter, CallSetup, NoActions, NoReporter, StreamRefused
from .recogniser import Recogniser
from .records import CallRecords
from .reply import CurrentReply, Reply
from .summary import summarize
from .tasks import CallTasks
from .tools import ToolClient
from .turn import (
    BargeIn,
    BargeInPending,
    BargeInRejected,
    CancelTimer,
    Command,
    Commit,
    CommitReply,
    ConfirmBargeIn,
    DropReply,
    EndTurn,
    Event,
    FailCall,
    Failing,
    FinalizeStt,
    Greet,
    KeyPressed,
    KeysEntered,
    KeysHeard,
    PlayoutDone,
    ReplyAudioReady,
    ReplyFailed,
    ReplySpeaking,
    ResumeAfterHold,
    SayFiller,
    SpeechResumed,
    SpeechStarted,
    StampTurn,
    StartReply,
    StartTimer,
    Stopped,
    SttReady,
    TentativeEnd,
    Timer,
    TimerFired,
    ToolFinished,
    ToolStarted,
    Transcribed,
    TurnConfig,
    TurnEnded,
    TurnPolicy,
    VadBargeIn,
)
from .usage import CallUsage

log = logging.getLogger(__name__)
T = TypeVar("T")

SETUP_TIMEOUT_S = 5.0
"""How long a stream waits for its call's setup before the default agent takes the call (the
control plane's ``streams.setup_timeout_s``)."""

_background: set[asyncio.Task[Any]] = set()
"""Reports of ended calls (summary, outcome) still being written."""


async def finish_reports(timeout_s: float = 15.0) -> None:
    """Wait, bounded, for the agents of ended calls to hand over their reports. A server that
    is shutting down calls this before it closes the store those reports go to."""
    if _background:
        await asyncio.wait(set(_background), timeout=timeout_s)


_ENDPOINT_EVENTS: dict[EndpointEvent, Callable[[float], Event]] = {
    EndpointEvent.SPEECH_START: SpeechStarted,
    EndpointEvent.BARGE_IN: lambda now: SpeechStarted(now, barge_in=True),
    EndpointEvent.TENTATIVE_END: TentativeEnd,
    EndpointEvent.SPEECH_RESUMED: SpeechResumed,
    EndpointEvent.TURN_END: TurnEnded,
    EndpointEvent.BARGE_IN_PENDING: BargeInPending,
    EndpointEvent.BARGE_IN_REJECTED: BargeInRejected,
}


def turn_config(profile: AgentProfile, stt: SpeechToText, final_wait_s: float,
                endpointing: EndpointingConfig | None = None, *, guess: bool = True) -> TurnConfig:
    """The turn policy's settings: the agent's, what the recogniser can do, and the media
    session's endpointing (whether it has a confident end). ``guess``: the opening guess may run
    (the call's own agent is known and has no line to open with)."""
    config = profile.config
    ends = endpointing or EndpointingConfig()
    confident_end = endpointing is not None and (
        endpointing.tentative_end_ms < endpointing.confident_end_of_turn_ms < endpointing.end_of_turn_ms)
    return TurnConfig(
        speculative=config.speculative,
        opening_guess=(config.opening_guess or "") if guess else "",
        incomplete_turn_hold_ms=config.incomplete_turn_hold_ms,
        barge_in_words_wait_s=config.barge_in_words_wait_ms / 1000,
        final_wait_s=final_wait_s,
        confident_end=confident_end,
        can_finalize=getattr(stt, "can_finalize", True),
        # Without partial transcripts no words come while the caller talks over the reply: a
        # barge-in cannot wait for them and is confirmed on the VAD alone.
        interim_results=getattr(stt, "interim_results", True),
        tool_filler_after_s=config.tool_filler_after_ms / 1000,
        gather=config.gather,
        noise_wordless_s=(ends.end_of_turn_ms - ends.tentative_end_ms) / 1000,
        final_contour=config.final_contour,
    )



def _ignore(provider: str) -> None:
    pass

class CallAgent(MediaListener):
    """The conversation of one call. Create one per media stream."""

    def __init__(
        self,
        profile: AgentProfile,
        *,
        stt: SpeechToText,
        llm: ChatModel,
        tts: TextToSpeech,
        actions: CallActions | None = None,
        reporter: CallReporter | None = None,
        phrases: PhraseCache | None = None,
        tool_client: ToolClient | None = None,
        stt_final_timeout_s: float | None = None,
        setup: Callable[[Start], Awaitable[CallSetup | None]] | None = None,
        setup_timeout_s: float = SETUP_TIMEOUT_S,
        on_provider_error: Callable[[str], None] | None = None,
    ) -> None:
        self.profile = profile
        # Told the provider's name on each failure (the metrics layer counts them).
        self.on_provider_error = on_provider_error or _ignore
        self.setup = setup
        self.setup_timeout_s = setup_timeout_s
        self.stt = stt
        self.llm = llm
        self.tts = tts
        self.records = CallRecords(reporter or NoReporter(), usage=self._usage_so_far)
        self.phrases = phrases or PhraseCache(tts)
        self.call_tools = CallTools(profile, tool_client)
        # How long a turn waits, after its end, for a final still owed (None: the STT's own bound).
        self.stt_final_timeout_s = stt_final_timeout_s if stt_final_timeout_s is not None else getattr(
            stt, "final_wait_s", 0.8)
        self.conversation = Conversation(profile.system_prompt)
        self.policy = TurnPolicy(turn_config(profile, stt, self.stt_final_timeout_s, guess=False))
        self.speculation = self.policy.speculation
        self.errors: list[str] = []
        self.usage = CallUsage(llm_model=getattr(llm, "model_name", None))  # (a duck-typed model may lack it)
        self._tasks = CallTasks()
        self.spawn = self._tasks.spawn
        self.close_later = self._tasks.close_later
        self.control = CallControl(actions or NoActions(), self.errors, self.spawn)
        self.recogniser = Recogniser(stt, errors=self.errors, spawn=self.spawn, close_later=self.close_later,
                                     on_transcript=self._on_transcript,
                                     on_provider_error=self.on_provider_error,
                                     on_ready=lambda ready: self._feed(SttReady(ready)), on_fatal=self._fail)
        self.session: MediaSession = None  # type: ignore[assignment]  # set in on_start
        self.call_control_id: str | None = None
        self.sample_rate = 8000
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.timers = LoopTimers(self._timer_fired)
        self.current_reply = CurrentReply()
        self._greeting: str | None = None  # the first message, or the line a picked-up call resumes with
        self._may_guess = False  # the opening guess: only once the setup shows the call's own agent
        self._stopped = False

    @property
    def mode(self) -> str:
        return self.policy.mode

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.call_tools.definitions

    @property
    def knowledge(self) -> TurnKnowledge | None:
        return self.call_tools.knowledge

    @property
    def reporter(self) -> CallReporter:
        return self.records.reporter

    @property
    def actions(self) -> CallActions:
        return self.control.actions

    @property
    def pci(self) -> bool:
        return self.control.pci

    @property
    def end_reason(self) -> str | None:
        return self.control.end_reason

    @end_reason.setter
    def end_reason(self, reason: str | None) -> None:
        self.control.end_reason = reason

    def _turn_config(self) -> TurnConfig:
        # (A media session that has no engine config, as tests' stand-ins: no confident end.)
        endpointing = getattr(getattr(self.session, "config", None), "endpointing", None)
        return turn_config(self.profile, self.stt, self.stt_final_timeout_s, endpointing, guess=self._may_guess)

    # -- media events ---------------------------------------------------------------------

    def on_start(self, session: MediaSession, start: Start) -> None:
        self.session = session
        self.call_control_id = self.records.call_control_id = self._tasks.call_control_id = start.call_control_id
        self.sample_rate = self.usage.sample_rate = session.codec.sample_rate if session.codec else 8000
        self._loop = asyncio.get_running_loop()
        self.policy.reconfigure(self._turn_config())
        self.spawn(self._begin(start))

    async def _begin(self, start: Start) -> None:
        """Find out which call this is (the control plane's records), then listen and greet.
        Caller audio that arrives meanwhile is buffered for the STT."""
        greeting = self.profile.config.first_message
        elapsed_s = 0.0
        if self.setup is not None:
            try:
                # Not the providers' deadline: the records are ours, and slow ones (load) are worth a
                # moment of the caller's silence (their audio is buffered), not the wrong agent.
                setup = await asyncio.wait_for(self.setup(start), self.setup_timeout_s)
            except StreamRefused as exc:
                # Someone else's call, or one that is over: not a word, and the socket goes.
                log.warning("stream for %s refused: %s", start.call_control_id, exc)
                self._stopped = True
                self.session.end()
                return
            except Exception as exc:  # a records outage must not cost the call
                why = f"not ready in {self.setup_timeout_s:g} s" if isinstance(exc, TimeoutError) else str(exc)
                self.errors.append(f"setup: {why}")
                log.warning("call %s: no call setup (%s); running the default agent", start.call_control_id, why)
                setup = None
            if setup is not None:
                self.profile = setup.profile
                self.control.actions = setup.actions
                self.records.reporter = setup.reporter
                self.call_tools.set_up(setup)
                self.conversation = Conversation(setup.profile.system_prompt)
                self.policy.reconfigure(self._turn_config())
                greeting = setup.profile.config.first_message
                if setup.history:  # picked up again: the conversation goes on
                    self.conversation.messages = [dict(m) for m in setup.history]
                    self.records.turns = setup.turns
                if setup.greeting is not None:
                    greeting = setup.greeting
                elapsed_s = setup.elapsed_s
        if self._stopped:
            return
        config = self.profile.config
        self.spawn(self.recogniser.open(self.sample_rate, self.deadline_s))
        self.spawn(self.phrases.warm(self.profile.voice, self.sample_rate,
                                     (config.filler_text, config.tool_filler_text, config.apology_text),
                                     self.usage))
        # The limit is the call's, not this stream's: a call picked up again keeps what it had left.
        self._loop.call_later(max(0.0, config.max_duration_s - elapsed_s), self._max_duration_reached)
        self._greeting = greeting
        if greeting:
            self._feed(Greet(greeting))
        else:  # the call's own agent, with no line to open with: the caller's first may be guessed
            self._may_guess = True
            self.policy.reconfigure(self._turn_config())

    def on_caller_audio(self, pcm: bytes) -> None:
        self.recogniser.feed(pcm)

    def on_endpoint(self, event: EndpointEvent, now: float) -> None:
        if not self._stopped:
            if event is EndpointEvent.TENTATIVE_END:
                # The caller's last half second, for the contour the policy reads if its words
                # leave it unsure (copied now: the ring moves on with the next frame).
                audio = (PauseAudio(self.session.caller_tail(), self.sample_rate)
                         if self.policy.config.final_contour else NO_AUDIO)
                self._feed(TentativeEnd(now, quiet_run=self.session.pause_run_quiet, audio=audio))
            else:
                self._feed(_ENDPOINT_EVENTS[event](now))
            if event is EndpointEvent.TENTATIVE_END and self.knowledge is not None:
                # Search on the signal that starts speculation, while the recogniser finalizes.
                self.knowledge.prefetch(self.policy.transcript, self.session.current_turn)

    def confirm_barge_in(self) -> bool:
        """The VAD heard the caller talk over the reply long enough for a barge-in; the policy
        says whether to drop the reply now or wait for the recogniser's words."""
        if self._stopped:
            return True
        self._feed(VadBargeIn(self._loop.time()))
        return not self.policy.barge_in_deferred

    def on_barge_in(self, interruption: Interruption, now: float) -> None:
        reply = self.current_reply.take(interruption.utterance_id)
        returned: str | None = None
        if reply is not None:
            returned = self.records.reply_cut_off(self.conversation, reply, interruption.heard_ms)
            if self.policy.failing:
                self.spawn(self.control.hangup(self.end_reason or "provider failure"))
            else:
                self.control.call_off()  # the caller has more to say than goodbye
            reply.cancel()
        self._feed(BargeIn(now, interruption.utterance_id, returned))

    def on_dtmf(self, digit: str, now: float) -> None:
        self._feed(KeyPressed(now, digit))

    def on_playout_done(self, utterance_id: int, now: float) -> None:
        reply = self.current_reply.take(utterance_id)
        if reply is not None:
            self.records.reply_played(self.conversation, reply, self._greeting)
        self._feed(PlayoutDone(utterance_id, now))
        if reply is not None:
            self.control.reply_played()

    def on_stop(self, now: float) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.recogniser.closed = True
        self._feed(Stopped(now))
        self.end_reason = self.end_reason or "hangup"
        task = asyncio.ensure_future(self._finish())
        _background.add(task)
        task.add_done_callback(_background.discard)

    # -- the recogniser ---------------------------------------------------------------------

    def _on_transcript(self, transcript: Transcript) -> None:
        if not self._stopped:
            voice_at = self.session.caller_voice.voice_at if self.session is not None else -math.inf
            self._feed(Transcribed(self._loop.time(), transcript.text, transcript.is_final,
                                   transcript.speech_final, voice_at))

    # -- carrying out the policy's commands -------------------------------------------------

    def _feed(self, event: Event) -> None:
        for command in self.policy.handle(event):
            self._execute(command)

    def _execute(self, command: Command) -> None:
        kind = type(command)
        if kind is StartReply:
            self._start_reply(command)  # type: ignore[arg-type]
        elif kind is CommitReply:
            self.current_reply.commit(command.utterance_id)  # type: ignore[attr-defined]
        elif kind is DropReply:
            self.current_reply.drop(command.utterance_id)  # type: ignore[attr-defined]
        elif kind is Commit:
            if command.text and (turn := self.session.current_turn) is not None:  # type: ignore[attr-defined]
                turn.stamp("stt_final", self._loop.time())
                turn.outcome = command.outcome  # type: ignore[attr-defined]  # for the turn's record
        elif kind is EndTurn:
            self.session.end_turn_sooner()
        elif kind is FinalizeStt:
            self.recogniser.finalize()
        elif kind is StartTimer:
            self.timers.start(self._loop, command.timer, command.deadline)  # type: ignore[attr-defined]
        elif kind is CancelTimer:
            self.timers.cancel(command.timer)  # type: ignore[attr-defined]
        elif kind is ResumeAfterHold:
            self.session.resume_after_hold()
        elif kind is ConfirmBargeIn:
            self.session.barge_in(self._loop.time())
        elif kind is StampTurn:
            self._stamp(command.name, command.at)  # type: ignore[attr-defined]
        elif kind is SayFiller:
            self._say_filler(command)  # type: ignore[arg-type]
        elif kind is KeysEntered:
            self._keys_entered(command.digits)  # type: ignore[attr-defined]
        elif kind is FailCall:
            self._fail(command.reason)  # type: ignore[attr-defined]
        # DiscardText: nothing to do; the policy's reason is the record.

    def _timer_fired(self, timer: Timer) -> None:
        if not self._stopped:
            self._feed(TimerFired(timer, self._loop.time()))

    def _stamp(self, name: str, at: float) -> None:
        turn = self.session.current_turn
        if turn is not None:
            turn.stamp(name, at, overwrite=name == "turn_end")

    def _start_reply(self, command: StartReply) -> None:
        reply = Reply(self, command.utterance_id, user_text=command.user_text, committed=command.committed,
                      fixed_text=command.fixed_text, attempt=command.attempt)
        self.current_reply.reply = reply
        reply.start()

    def _say_filler(self, command: SayFiller) -> None:
        config = self.profile.config
        text = config.tool_filler_text if command.kind == "tool" else config.filler_text
        audio = self.phrases.get(self.profile.voice, self.sample_rate, text)
        if audio is None:
            return  # not synthesized (the TTS was down): silence rather than a wait
        if command.kind == "tool":
            reply = self.current_reply.get(command.utterance_id)
            if reply is not None:
                reply.insert(audio, text)
            return
        self.session.speak(command.utterance_id, audio)
        self.session.finish_utterance(command.utterance_id)

    # -- what a reply needs (ReplyHost) -------------------------------------------------------

    @property
    def voice(self) -> str:
        return self.profile.voice

    @property
    def deadline_s(self) -> float:
        return self.profile.config.provider_deadline_s

    def now(self) -> float:
        return self._loop.time()

    def messages_for(self, user_text: str) -> list[dict[str, Any]]:
        return [*self.conversation.for_model(), {"role": "user", "content": user_text}]

    def reply_speaking(self, reply: Reply) -> None:
        if reply.fixed_text is None:
            self.conversation.add_user(reply.user_text)
        self._feed(ReplySpeaking(reply.utterance_id))

    def reply_audio_ready(self, reply: Reply) -> None:
        self._feed(ReplyAudioReady(reply.utterance_id))

    def reply_failed(self, reply: Reply, exc: BaseException) -> None:
        self.errors.append(f"reply {reply.utterance_id}: {exc}")
        self.on_provider_error(provider_of(exc, "llm_or_tts"))
        if reply is not self.current_reply.reply or self._stopped:
            return
        log.warning("call %s: provider failure (%s); attempt %d", self.call_control_id, exc, reply.attempt + 1)
        self._feed(ReplyFailed(reply.utterance_id, str(exc)))

    async def run_tools(self, reply: Reply, calls: list[ToolCall], messages: list[dict[str, Any]]) -> bool:
        """Run the model's tool calls; True when the model should continue with the results. A
        tool that runs long gets the filler line (the policy's timer)."""
        self._feed(ToolStarted(reply.utterance_id, self._loop.time()))
        reply.tool_running(True)
        try:
            return await self.call_tools.run(calls, messages, self.conversation, self.control, self.profile.config,
                                             self.call_control_id)
        finally:
            reply.tool_running(False)
            if not self._stopped:
                self._feed(ToolFinished(reply.utterance_id, self._loop.time()))

    def _fail(self, reason: str) -> None:
        """Apologise and end the call cleanly; the reason is recorded."""
        if self.control.hangup_after is not None or self._stopped:
            return
        self.end_reason = self.control.hangup_after = reason
        apology = self.phrases.get(self.profile.voice, self.sample_rate, self.profile.config.apology_text)
        if apology is None or self.session.codec is None:
            self._feed(Failing(reason))
            self.current_reply.drop()
            self.spawn(self.control.hangup(reason))
            return
        uid = self.policy.new_utterance_id()
        self._feed(Failing(reason, apology_id=uid))
        self.current_reply.drop()
        # Hang up when the apology has played (its playout end), or a little after it should have.
        seconds = len(apology) / 2 / self.sample_rate
        self._loop.call_later(seconds + 2.0, lambda: self.spawn(self.control.hangup(reason)))
        # (As the reply, so that its playout end triggers the hang-up.)
        self.current_reply.reply = Reply.recorded(self, uid, self.profile.config.apology_text, apology)

    # -- call control ---------------------------------------------------------------------

    def _keys_entered(self, digits: str) -> None:
        heard = self.control.keys_entered(digits, self.profile.config.pci_dtmf_sequence)
        if heard is not None:
            self._feed(KeysHeard(self._loop.time(), describe_keys(heard)))

    def _max_duration_reached(self) -> None:
        if not self._stopped:
            self._fail("maximum call duration reached")

    # -- the end ------------------------------------------------------------------------------

    async def _finish(self) -> None:
        self.timers.cancel_all()
        reply = self.current_reply.take()
        if reply is not None:
            self.records.reply_hung_up(self.conversation, reply, self._loop.time())
            reply.cancel()
        if self.knowledge is not None:
            self.knowledge.close()
        await self._tasks.cancel_all()
        await self.recogniser.aclose()
        try:
            summary, outcome = await summarize(self.llm, self.conversation, self.profile.config, self.errors,
                                               on_provider_error=self.on_provider_error, usage=self.usage)
        except Exception as exc:  # a model plugin's bug must not cost the call its record
            log.exception("call %s: the summary failed", self.call_control_id)
            self.errors.append(f"summary: {type(exc).__name__}")
            summary, outcome = None, None
        await self.records.finished(CallReport(
            call_control_id=self.call_control_id,
            transcript=self.conversation.transcript(),
            summary=summary,
            outcome=outcome,
            end_reason=self.end_reason or "hangup",
            turns=self.records.turns,
            speculation=self.speculation.as_dict(),
            errors=list(self.errors),
            usage=self._usage_so_far(),
        ))

    def _usage_so_far(self) -> dict[str, Any]:
        self.usage.stt_bytes = self.recogniser.sent_bytes
        return self.usage.as_dict()
