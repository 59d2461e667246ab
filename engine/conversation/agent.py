"""One call's conversation: media events in, STT -> LLM -> TTS -> playout out.

:class:`CallAgent` is a :class:`~engine.session.MediaListener`. It keeps the state
(listening, thinking, speaking) and owns the provider streams of one call. The rules
that matter for the caller:

* **Speculation.** On the engine's tentative end-of-turn the STT is asked to finalize
  and the LLM starts on the transcript so far; audio it produces is held back until
  the turn really ends. If the caller resumes, the speculative reply is cancelled
  silently; if the final transcript differs, it is restarted.
* **One reply per turn.** A caller who speaks again before the agent's reply is heard
  gets one merged turn: the pending reply is dropped and the transcripts accumulate.
* **Finals the recogniser owes.** Where the STT cannot finalize on request (most Telnyx
  engines, see ``providers/stt_engines.py``), its finals come on its own segmentation,
  often after the turn has ended: the turn commits on the final, or when the STT's
  ``final_wait_s`` has passed with whatever finals there are. A final later than that is
  kept, even while the reply plays, and joins the next turn; it never fails the call.
* **Barge-in.** In-flight LLM and TTS requests are cancelled and the history keeps
  only the words the caller heard (from playout accounting and TTS alignment).
* **Failures.** A provider error or a stall past the deadline gets one retry, with a
  short filler line meanwhile; if the retry fails the agent apologises and hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import aiohttp
import orjson

from ..endpointing import EndpointEvent
from ..playout import Interruption
from ..protocol import Start
from ..providers.base import (
    ChatModel, ProviderError, SpeechToText, SttSession, TextToSpeech, ToolCall, Transcript, TtsStream,
)
from ..session import MediaListener, MediaSession
from ..timeline import TurnTimeline
from .chunker import SpeechChunker
from .config import AgentProfile
from .dtmf import DtmfCollector, describe_keys
from .history import Conversation, SpokenText
from .phrases import PhraseCache
from .egress import EgressPolicy
from .ports import (
    CallActions,
    CallReport,
    CallReporter,
    CallSetup,
    NoActions,
    NoReporter,
    StreamRefused,
    TurnRecord,
)
from .tools import ToolClient, tool_definitions
from .usage import CallUsage
from .turn_completion import Verdict, hold_ms, judge_text, punctuation_verdict

log = logging.getLogger(__name__)
T = TypeVar("T")

_WORDS = re.compile(r"[a-z0-9']+")
MAX_TOOL_ROUNDS = 3
REPORT_TIMEOUT_S = 10.0
"""How long a call's end waits for its last turn records to be stored."""
SPEECH_FINAL_TRUST_S = 0.6
"""The VAD must have heard speech this long for the recogniser's speech_final (after its own
silence window, 500 ms at Telnyx's default) to overrule it."""
EARLY_AUDIO_LIMIT = 16000 * 2 * 5  # caller audio kept while the STT stream opens (5 s)
_background: set[asyncio.Task[Any]] = set()
"""Reports of ended calls (summary, outcome) still being written."""


async def finish_reports(timeout_s: float = 15.0) -> None:
    """Wait, bounded, for the agents of ended calls to hand over their reports. A server that
    is shutting down calls this before it closes the store those reports go to."""
    if _background:
        await asyncio.wait(set(_background), timeout=timeout_s)


_NON_WORDS = re.compile(r"\([^)]*\)")


def word_count(text: str) -> int:
    """Recognised words, leaving out bracketed non-speech tags such as "(unrecognised speech)"."""
    return len(_WORDS.findall(_NON_WORDS.sub(" ", text.lower())))


def same_words(a: str, b: str) -> bool:
    """Whether two transcripts say the same thing (case and punctuation aside)."""
    return _WORDS.findall(a.lower()) == _WORDS.findall(b.lower())


class SpeculationStats:
    __slots__ = ("started", "kept", "cancelled", "restarted")

    def __init__(self) -> None:
        self.started = self.kept = self.cancelled = self.restarted = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class _Reply:
    """One agent reply: model text -> speakable chunks -> TTS audio -> (held or) playout."""

    def __init__(
        self, agent: CallAgent, utterance_id: int, *, user_text: str, finals_used: int,
        speculative: bool, committed: bool, fixed_text: str | None = None, attempt: int = 0,
    ) -> None:
        self.agent = agent
        self.utterance_id = utterance_id
        self.user_text = user_text
        self.finals_used = finals_used
        self.speculative = speculative
        self.committed = committed
        self.fixed_text = fixed_text
        self.attempt = attempt
        self.timeline: TurnTimeline | None = agent.session.current_turn if fixed_text is None else None
        self.spoken = SpokenText()
        self.text_parts: list[str] = []
        self.held: list[bytes] = []
        self.audio_done = False
        self.speaking = False
        self.cancelled = False
        self.failed = False
        self.task: asyncio.Task[None] | None = None
        self._stream: TtsStream | None = None
        self._opening: asyncio.Task[TtsStream] | None = None
        self._pump: asyncio.Task[None] | None = None

    # -- control ------------------------------------------------------------------------

    def start(self) -> None:
        self.task = self.agent._spawn(self._run())

    def commit(self) -> None:
        """The turn is final: audio may play. Held audio goes out at once."""
        if self.committed:
            return
        self.committed = True
        if not self.cancelled:
            self._open_tts()
        for pcm in self.held:
            self._play(pcm)
        self.held.clear()
        if self.audio_done:
            self.agent.session.finish_utterance(self.utterance_id)

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        for task in (self.task, self._pump, self._opening):
            if task is not None and not task.done():
                task.cancel()
        if self._stream is not None:
            self.agent._spawn(self._stream.aclose())

    # -- work ---------------------------------------------------------------------------

    async def _run(self) -> None:
        agent = self.agent
        try:
            self._open_tts()  # the handshake overlaps the LLM's time to first token
            if self.fixed_text is not None:
                stream = await self._tts()
                self.spoken.add_text(self.fixed_text)
                self.text_parts.append(self.fixed_text)
                agent.usage.tts_characters += len(self.fixed_text)
                await stream.send_text(self.fixed_text, flush=True)
            else:
                await self._generate()
            stream = await self._tts()
            await stream.end()
            await self._pump
        except asyncio.CancelledError:
            raise
        except (ProviderError, TimeoutError, aiohttp.ClientError) as exc:
            self.failed = True
            agent._reply_failed(self, exc)
        except Exception:
            self.failed = True
            log.exception("reply failed on call %s", agent.call_control_id)
            agent._reply_failed(self, ProviderError("agent", "internal error", retryable=False))

    def _open_tts(self) -> None:
        """Start the TTS handshake (once), with the LLM request: after the first token it would
        sit on the critical path. (Speculation starts only on text a turn can end with, so
        few of these connections are thrown away.)"""
        if self._opening is None:
            self._opening = self.agent._spawn(self._connect_tts())

    async def _connect_tts(self) -> TtsStream:
        agent = self.agent
        stream = await agent._deadline(agent.tts.open(voice=agent.profile.voice, sample_rate=agent.sample_rate))
        self._stream = stream
        if self.cancelled:
            await stream.aclose()
            raise asyncio.CancelledError
        self._pump = agent._spawn(self._pump_audio(stream))
        return stream

    async def _tts(self) -> TtsStream:
        self._open_tts()
        return await self._opening  # type: ignore[misc]

    async def _generate(self) -> None:
        agent = self.agent
        messages = agent._messages_for(self.user_text)
        tools = agent.tools or None
        for _ in range(MAX_TOOL_ROUNDS):
            chunker = SpeechChunker()
            calls: list[ToolCall] = []
            self._stamp("llm_request", overwrite=True)
            first = True
            async for delta in agent._stream_with_deadline(agent.llm.stream(messages, tools=tools)):
                if delta.usage is not None:  # the stream's last chunk: no token of the answer
                    agent.usage.add_llm(delta.usage)
                    continue
                if first:
                    self._stamp("llm_first_token", overwrite=True)
                    first = False
                if delta.text:
                    for piece in chunker.feed(delta.text):
                        await self._say(piece)
                calls.extend(delta.tool_calls)
            for piece in chunker.flush():
                await self._say(piece)
            if not calls:
                return
            follow_up = await agent._run_tools(calls, messages)
            if not follow_up:
                return

    async def _say(self, piece: str) -> None:
        stream = await self._tts()
        if not self.text_parts:
            self._stamp("tts_request", overwrite=True)  # this reply's, not a cancelled one's
        self.text_parts.append(piece)
        self.spoken.add_text(piece)
        self.agent.usage.tts_characters += len(piece)
        await stream.send_text(piece, flush=True)

    async def _pump_audio(self, stream: TtsStream) -> None:
        agent = self.agent
        first = True
        async for chunk in agent._stream_with_deadline(stream.__aiter__()):
            if first:
                self._stamp("tts_first_audio", overwrite=True)
                first = False
            if not chunk.pcm:
                continue
            agent.usage.tts_bytes += len(chunk.pcm)
            self.spoken.add_audio(len(chunk.pcm) * 500 / agent.sample_rate, chunk.text)
            if self.committed:
                self._play(chunk.pcm)
            else:
                self.held.append(chunk.pcm)
        self.audio_done = True
        if self.committed:
            agent.session.finish_utterance(self.utterance_id)

    def _play(self, pcm: bytes) -> None:
        if not self.speaking:
            self.speaking = True
            self.agent._speaking_started(self)
        self.agent.session.speak(self.utterance_id, pcm)

    def _stamp(self, name: str, *, overwrite: bool = False) -> None:
        if self.timeline is not None:
            self.timeline.stamp(name, self.agent._loop.time(), overwrite=overwrite)

    @property
    def text(self) -> str:
        return " ".join(self.text_parts)


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
    ) -> None:
        self.profile = profile
        self.setup = setup
        self.stt = stt
        self.llm = llm
        self.tts = tts
        self.actions = actions or NoActions()
        self.reporter = reporter or NoReporter()
        self.phrases = phrases or PhraseCache(tts)
        self.tool_client = tool_client
        self.tool_policy: EgressPolicy | None = None  # the server's, unless the call's setup says otherwise
        # How long a turn waits, after its end, for a final still owed (None: the STT's own bound).
        self.stt_final_timeout_s = stt_final_timeout_s if stt_final_timeout_s is not None else getattr(
            stt, "final_wait_s", 0.8)
        self._can_finalize: bool = getattr(stt, "can_finalize", True)
        # Without partial transcripts no words come while the caller talks over the reply: a
        # barge-in cannot wait for them and is confirmed on the VAD alone.
        self._words_confirm_barge_in: bool = getattr(stt, "interim_results", True)
        self.tools = tool_definitions(profile)
        self.conversation = Conversation(profile.system_prompt)
        self.speculation = SpeculationStats()
        self.usage = CallUsage()
        self.mode = "listening"
        self.pci = False
        self.end_reason: str | None = None
        self.errors: list[str] = []
        self.session: MediaSession = None  # type: ignore[assignment]  # set in on_start
        self.call_control_id: str | None = None
        self.sample_rate = 8000
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reports: set[asyncio.Task[Any]] = set()  # turn records on their way: never cancelled
        self._stt: SttSession | None = None
        self._early_audio = bytearray()
        self._finals: list[str] = []
        self._interim = ""
        # False while a final is owed: after a Finalize or, where the STT cannot finalize, since
        # the caller's voice (re)started; a turn does not commit on text that is still coming.
        self._final_since_finalize = True
        self._late_final_owed = False  # a turn committed without its final: take it when it comes
        self._ended_by_recogniser = False  # the recogniser ended a turn the VAD still held open
        self._turn_open = False
        self._awaiting_commit = False
        self._commit_timer: asyncio.TimerHandle | None = None
        self._hold_timer: asyncio.TimerHandle | None = None
        self._reply: _Reply | None = None
        self._next_utterance = 1
        self._turn_index = 0
        self._hangup_after: str | None = None
        self._greeting: str | None = None  # the first message, or the line a picked-up call resumes with
        self._transfer_after: str | None = None
        self._dtmf = DtmfCollector(profile.config.gather)
        self._dtmf_timer: asyncio.TimerHandle | None = None
        self._stopped = False
        self._failing = False  # apologising before hanging up: no more replies
        self._words_at_tentative = 0
        self._empty_flaps = 0
        self._discard_next_final = False
        self._tentative = False  # between TENTATIVE_END and TURN_END or the caller resuming
        self._hung_up = False
        self._voice_since = 0.0  # when the VAD's current stretch of caller speech began
        self._turn_since = 0.0  # ... and when its current turn began (pauses within it aside)
        self._heard_texts = 0  # transcripts with words so far (interim or final)
        self._texts_at_pending: int | None = None  # ... when the caller began over the agent
        self._barge_in_timer: asyncio.TimerHandle | None = None

    # -- media events ---------------------------------------------------------------------

    def on_start(self, session: MediaSession, start: Start) -> None:
        self.session = session
        self.call_control_id = start.call_control_id
        self.sample_rate = session.codec.sample_rate if session.codec else 8000
        self.usage.sample_rate = self.sample_rate
        self._loop = asyncio.get_running_loop()
        self._spawn(self._begin(start))

    async def _begin(self, start: Start) -> None:
        """Find out which call this is (the control plane's records), then listen and greet.
        Caller audio that arrives meanwhile is buffered for the STT."""
        greeting = self.profile.config.first_message
        if self.setup is not None:
            try:
                setup = await self._deadline(self.setup(start))
            except StreamRefused as exc:
                # Someone else's call, or one that is over: not a word, and the socket goes.
                log.warning("stream for %s refused: %s", start.call_control_id, exc)
                self._stopped = True
                self.session.end()
                return
            except Exception as exc:  # a records outage must not cost the call
                self.errors.append(f"setup: {exc}")
                log.warning("call %s: no call setup (%s); running the default agent", start.call_control_id, exc)
                setup = None
            if setup is not None:
                self.profile = setup.profile
                self.actions = setup.actions
                self.reporter = setup.reporter
                self.tools = tool_definitions(setup.profile)
                self.conversation = Conversation(setup.profile.system_prompt)
                self._dtmf = DtmfCollector(setup.profile.config.gather)
                if self.tool_client is not None and setup.tool_destinations:
                    self.tool_policy = self.tool_client.policy_for(setup.tool_destinations)
                greeting = setup.profile.config.first_message
                if setup.history:  # picked up again: the conversation goes on
                    self.conversation.messages = [dict(m) for m in setup.history]
                    self._turn_index = setup.turns
                if setup.greeting is not None:
                    greeting = setup.greeting
        if self._stopped:
            return
        self._spawn(self._open_stt())
        self._spawn(self.phrases.warm(self.profile.voice, self.sample_rate,
                                      (self.profile.config.filler_text, self.profile.config.apology_text)))
        self._loop.call_later(self.profile.config.max_duration_s, self._max_duration_reached)
        self._greeting = greeting
        if greeting and self._reply is None:
            self._start_reply(fixed_text=greeting, committed=True)

    def on_caller_audio(self, pcm: bytes) -> None:
        stt = self._stt
        if stt is not None:
            self.usage.stt_bytes += len(pcm)
            stt.feed(pcm)
        elif len(self._early_audio) < EARLY_AUDIO_LIMIT:
            self._early_audio += pcm

    def on_endpoint(self, event: EndpointEvent, now: float) -> None:
        if self._stopped:
            return
        if event is EndpointEvent.SPEECH_START or event is EndpointEvent.BARGE_IN:
            self._voice_since = self._turn_since = now
            self._owe_final()
            self._turn_open = True
            self._ended_by_recogniser = False
            self._tentative = False
            self._empty_flaps = 0
            self._discard_next_final = False
            self._cancel_commit_timer()
            reply = self._reply
            if reply is not None and not reply.speaking and reply.fixed_text is None:
                # The caller goes on before hearing anything: one merged turn, not two replies.
                if reply.speculative and not reply.committed:
                    self.speculation.cancelled += 1
                self._drop_reply()
            self._awaiting_commit = False
        elif event is EndpointEvent.TENTATIVE_END:
            self._tentative = True
            if self._noise_keeps_turn_open():
                self._turn_open = False
                self._awaiting_commit = True
                self._maybe_commit()
                return
            self._finalize_stt()
            if self.profile.config.speculative and not self._failing and (
                self._reply is None or self._reply.fixed_text is None
            ):
                text = self._transcript_so_far()
                self._drop_stale_speculation()
                # (Without Finalize and with a final owed, the text lacks the words just said:
                # the speculation starts when their final comes, see _speculate_on_final.)
                if (self._reply is None and self._worth_speculating(text)
                        and (self._can_finalize or self._final_since_finalize)):
                    self.speculation.started += 1
                    self._start_reply(user_text=text, speculative=True, committed=False)
        elif event is EndpointEvent.BARGE_IN_PENDING:
            # The session holds the reply while the VAD makes up its mind; if it has not, and the
            # recogniser heard nothing, within the wait, it is noise: the reply goes on.
            self._texts_at_pending = self._heard_texts
            if self._words_confirm_barge_in:
                self._arm_noise_timer()
        elif event is EndpointEvent.BARGE_IN_REJECTED:
            self._texts_at_pending = None
            self._cancel_noise_timer()
            # A backchannel ("uh-huh") over the agent: not a turn. Have its words finalized
            # now and drop them, so they do not become a turn of their own later.
            if not self._turn_open:
                self._finalize_stt()
                self._discard_next_final = True
        elif event is EndpointEvent.SPEECH_RESUMED:
            # The speculative reply lives on (its audio stays held) until the caller's new
            # words show up in a transcript: in noise, "speech" the VAD hears after a pause
            # is often no words at all, and the turn then ends on the text it was started on.
            self._voice_since = now
            self._owe_final()
            self._tentative = False
        elif event is EndpointEvent.TURN_END:
            if self.session.barge_in_deferred:
                self._resume_after_noise()  # the "speech" over the reply ended without a word
            self._tentative = False
            if self._ended_by_recogniser:
                # The recogniser's endpointing ended (and committed) this turn already: the VAD
                # catching up must not commit it again, restarting the reply.
                self._ended_by_recogniser = False
                return
            self._turn_open = False
            self._awaiting_commit = True
            if self._final_since_finalize and not self._finals and self._interim:
                self._finalize_stt()  # no tentative signal came (config): finalize now
            self._commit_timer = self._loop.call_later(self.stt_final_timeout_s, self._commit, True)
            self._maybe_commit()

    def confirm_barge_in(self) -> bool:
        """The VAD heard the caller talk over the reply long enough for a barge-in. Drop the reply
        only once the recogniser has heard words in it: street noise or babble can keep a VAD
        on for seconds, and the reply (held since the caller began) would be lost to it."""
        if self._stopped or self._stt is None or self._texts_at_pending is None or not self._words_confirm_barge_in:
            return True
        if self._heard_texts > self._texts_at_pending:
            return True
        self._arm_noise_timer()
        return False

    def _arm_noise_timer(self) -> None:
        self._cancel_noise_timer()
        wait = self.profile.config.barge_in_words_wait_ms / 1000
        self._barge_in_timer = self._loop.call_later(wait, self._noise_timer_expired)

    def _noise_timer_expired(self) -> None:
        self._barge_in_timer = None
        pending = self._texts_at_pending
        if pending is not None and self._heard_texts == pending:
            self.session.resume_after_hold()

    def _cancel_noise_timer(self) -> None:
        if self._barge_in_timer is not None:
            self._barge_in_timer.cancel()
            self._barge_in_timer = None

    def _resume_after_noise(self) -> None:
        self._cancel_noise_timer()
        self.session.resume_after_hold()

    def _words_over_reply(self) -> None:
        """Words while a barge-in waits for them: it is one."""
        self._cancel_noise_timer()
        self.session.barge_in(self._loop.time())

    def on_barge_in(self, interruption: Interruption, now: float) -> None:
        self._texts_at_pending = None
        self._cancel_noise_timer()
        reply = self._reply
        if reply is None or reply.utterance_id != interruption.utterance_id:
            return
        heard = reply.spoken.heard(interruption.heard_ms)
        if heard or reply.fixed_text is not None or not self._unsay(reply):
            # (Unless the caller went on before hearing a word of the reply: then it is one
            # merged caller turn, not an empty interrupted reply.)
            self.conversation.add_assistant(heard, interrupted=True)
            self._report_turn(reply, heard, interrupted=True)
        if self._failing:
            self._spawn(self._end_call(self.end_reason or "provider failure"))
        else:
            self._hangup_after = None  # the caller has more to say than goodbye
            self._transfer_after = None
        reply.cancel()
        self._reply = None
        self.mode = "listening"

    def on_dtmf(self, digit: str, now: float) -> None:
        done = self._dtmf.press(digit, now)
        if self._dtmf_timer is not None:
            self._dtmf_timer.cancel()
            self._dtmf_timer = None
        if done is not None:
            self._keys_entered(done)
        elif self._dtmf.deadline is not None:
            self._dtmf_timer = self._loop.call_at(self._dtmf.deadline, self._dtmf_expired)

    def on_playout_done(self, utterance_id: int, now: float) -> None:
        reply = self._reply
        if reply is None or reply.utterance_id != utterance_id:
            return
        text = reply.spoken.text or reply.text
        if reply.fixed_text is None:
            self.conversation.add_assistant(text)
            self._report_turn(reply, text, interrupted=False)
        elif reply.fixed_text == self._greeting:
            self.conversation.add_assistant(text)  # the greeting is part of the conversation
        self._reply = None
        self.mode = "listening"
        if self._hangup_after is not None:
            self._spawn(self._end_call(self._hangup_after))
        elif self._transfer_after is not None:
            self._spawn(self._transfer(self._transfer_after))

    def on_stop(self, now: float) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.end_reason = self.end_reason or "hangup"
        task = asyncio.ensure_future(self._finish())
        _background.add(task)
        task.add_done_callback(_background.discard)

    # -- transcripts ------------------------------------------------------------------------

    async def _open_stt(self) -> None:
        for attempt in range(2):
            try:
                self._stt = await self._deadline(self.stt.open(
                    sample_rate=self.sample_rate, on_transcript=self._on_transcript, on_error=self._on_stt_error,
                ))
            except (ProviderError, TimeoutError, aiohttp.ClientError) as exc:
                self.errors.append(f"stt open: {exc}")
                if attempt == 0:
                    continue
                self._fail("speech recognition unavailable")
                return
            if self._early_audio:
                self.usage.stt_bytes += len(self._early_audio)
                self._stt.feed(bytes(self._early_audio))
                self._early_audio.clear()
            return

    def _on_stt_error(self, error: ProviderError) -> None:
        self.errors.append(f"stt: {error}")
        if self._stopped:
            return
        stt, self._stt = self._stt, None
        if stt is not None:
            self._spawn(stt.aclose())
        # Not retryable (a bad engine, model or format): the same request would fail again.
        if not error.retryable or sum(e.startswith("stt") for e in self.errors) > 2:
            self._fail("speech recognition failed")
        else:
            self._spawn(self._open_stt())

    def _on_transcript(self, transcript: Transcript) -> None:
        if self._stopped:
            return
        text = transcript.text.strip()
        if text:
            self._heard_texts += 1
            if self.session.barge_in_deferred:
                self._words_over_reply()
        accepting = self._turn_open or self._awaiting_commit or self.mode != "speaking" or self._late_final_owed
        if transcript.is_final:
            # A recogniser that segments on its own finalizes only after silence: a final that
            # lands while the caller is speaking is for earlier words, and the newer are still owed.
            if self._can_finalize or not self._turn_open or self._tentative:
                self._final_since_finalize = True
            self._late_final_owed = False
            self._interim = ""
            if self._discard_next_final and not self._turn_open:
                self._discard_next_final = False
                return
            if text and accepting:
                self._finals.append(text)
                if not self._tentative:
                    self._drop_stale_speculation()
                if self._failing:
                    pass
                elif not self._turn_open and not self._awaiting_commit and self._reply is None:
                    # Heard words the VAD did not call a turn (quiet speech): answer them anyway.
                    self._awaiting_commit = True
                elif self._tentative and self.profile.config.speculative and (
                        self._can_finalize or not self._recogniser_ends_turn(transcript)):
                    self._speculate_on_final()
                elif self._recogniser_ends_turn(transcript):
                    # The recogniser's own endpointing says the speech is over while the VAD
                    # has heard speech all along (babble or loud noise can keep it on): trust
                    # it. (Not when the VAD heard speech begin only just now: the recogniser's
                    # silence was a pause, and the caller is talking again.) With a finals-only
                    # engine this holds in the VAD's flapping pauses too: no TURN_END may come.
                    self._turn_open = False
                    self._awaiting_commit = True
                    self._ended_by_recogniser = True
                    self._final_since_finalize = True  # its final covers what it heard
            self._maybe_commit()
        elif accepting:
            self._interim = text
            if text:
                self._drop_stale_speculation()

    def _recogniser_ends_turn(self, transcript: Transcript) -> bool:
        """Whether a final ends the turn the VAD holds open. It must say the recogniser heard the
        speech end (Deepgram marks it ``speech_final``; an engine that cannot be asked to finalize
        sends finals only after its own silence window, so each of its finals says so), and the
        VAD must have heard "speech" all through that silence."""
        return (self._turn_open and self.mode != "speaking" and (transcript.speech_final or not self._can_finalize)
                and self._vad_on_through_recognisers_silence())

    def _vad_on_through_recognisers_silence(self) -> bool:
        """Whether the VAD heard "speech" all through the silence a recogniser's endpointed final
        reports: then the VAD is hearing noise. Deepgram's speech_final comes soon after its
        silence: the VAD's current stretch must be older than SPEECH_FINAL_TRUST_S. A finals-only
        engine's final reports a silence up to its lag (plus margin) ago, and the VAD flaps in
        noise: its turn, pauses included, must have been open longer than that; a turn younger
        than that began after that silence, so it is new speech."""
        now = self._loop.time()
        if self._can_finalize:
            return now - self._voice_since >= SPEECH_FINAL_TRUST_S
        return now - self._turn_since >= max(SPEECH_FINAL_TRUST_S, self.stt_final_timeout_s)

    def _drop_stale_speculation(self) -> None:
        """The caller went on after a pause and the transcript has their new words: a
        speculative reply to the text before them will not be spoken."""
        reply = self._reply
        if (reply is not None and reply.speculative and not reply.committed and reply.fixed_text is None
                and not same_words(reply.user_text, self._transcript_so_far())):
            self.speculation.cancelled += 1
            self._drop_reply()

    def _speculate_on_final(self) -> None:
        """The final for the tentative end's finalize arrived before the turn ended: start
        (or correct) the speculative reply now, with text that will not change."""
        text = self._transcript_so_far()
        reply = self._reply
        worth = self._worth_speculating(text)
        if reply is not None:
            if reply.fixed_text is not None or reply.committed or same_words(reply.user_text, text):
                return
            if worth:
                self.speculation.restarted += 1
            else:
                self.speculation.cancelled += 1
            self._drop_reply()
        elif worth:
            self.speculation.started += 1
        if worth:
            self._start_reply(user_text=text, speculative=True, committed=False)

    def _worth_speculating(self, text: str) -> bool:
        """Speculate only on text the turn can end with. Text the incomplete-turn hold would keep
        open is, nearly always, a caller pausing mid-sentence: a reply started on it would be
        cancelled, and each costs an LLM request. (The hold itself starts one, see _commit.)"""
        return bool(text) and (
            not self.profile.config.incomplete_turn_hold_ms or judge_text(text) is Verdict.COMPLETE
        )

    def _noise_keeps_turn_open(self) -> bool:
        """The VAD keeps hearing "speech" that the recogniser turns into no new words, pause
        after pause (babble, loud noise): the caller is done. Real speech adds words at every
        pause, because each tentative end asks the recogniser to finalize."""
        text = self._transcript_so_far()
        words = word_count(text)
        # Only a pause whose finalize has been answered counts: until the final arrives the
        # recogniser has had no chance to add the words (short tentative ends come faster).
        flapped = words > 0 and words == self._words_at_tentative and self._final_since_finalize
        self._empty_flaps = self._empty_flaps + 1 if flapped else 0
        self._words_at_tentative = words
        # Final punctuation only: a caller's pause inside a line flaps alike (synthetic voices
        # leave 300 ms word gaps), and words that read finished there would end the turn early.
        words_only = _NON_WORDS.sub("", text).strip()
        return self._empty_flaps >= 2 and bool(words_only) and punctuation_verdict(words_only) is Verdict.COMPLETE

    def _finalize_stt(self) -> None:
        """Ask for the final of what was said so far (where the STT cannot, this only flushes
        the audio buffered for it: its final comes when its own segmentation says)."""
        if self._stt is not None:
            if self._can_finalize:
                self._final_since_finalize = False
            self._spawn(self._stt.finalize())

    def _owe_final(self) -> None:
        """The caller's voice (re)started: an STT that cannot finalize on request owes a final
        for it, which the turn waits for (bounded by ``stt_final_timeout_s``)."""
        if not self._can_finalize:
            self._final_since_finalize = False

    def _transcript_so_far(self) -> str:
        parts = self._finals + ([self._interim] if self._interim else [])
        return " ".join(parts).strip()

    def _maybe_commit(self) -> None:
        if self._awaiting_commit and self._final_since_finalize and not self._turn_open:
            self._commit(False)

    def _cancel_commit_timer(self) -> None:
        if self._commit_timer is not None:
            self._commit_timer.cancel()
            self._commit_timer = None
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

    def _hold_expired(self) -> None:
        self._hold_timer = None
        turn = self.session.current_turn
        if turn is not None and self._awaiting_commit:
            turn.stamp("turn_end", self._loop.time(), overwrite=True)  # the hold was endpointing
        self._commit(True, hold_over=True)

    def _commit(self, forced: bool, *, hold_over: bool = False) -> None:
        """The caller's turn is over and its transcript is known: answer it (once)."""
        if self._failing:
            self._awaiting_commit = False
            return
        if not self._awaiting_commit or self._stopped or (self._hold_timer is not None and not hold_over):
            return
        text = self._transcript_so_far()
        hold = hold_ms(judge_text(text), self.profile.config.incomplete_turn_hold_ms) if text else 0
        if hold and not hold_over:
            # Mid-sentence (or maybe): give the caller a moment more. A speculative reply keeps
            # preparing meanwhile; speech cancels the hold and merges the turn.
            if self._commit_timer is not None:
                self._commit_timer.cancel()
                self._commit_timer = None
            self._hold_timer = self._loop.call_later(hold / 1000, self._hold_expired)
            if self._reply is None and self.profile.config.speculative:
                # The caller has been silent for a whole end-of-turn already: likely enough done
                # that the reply should be ready when the hold runs out.
                self.speculation.started += 1
                self._start_reply(user_text=text, speculative=True, committed=False)
            return
        self._awaiting_commit = False
        self._cancel_commit_timer()
        if not self._final_since_finalize:
            # Committed without the final it waited for: when that final comes, even while the
            # reply plays, its words are kept for the next turn instead of being dropped.
            self._late_final_owed = True
            self._final_since_finalize = True
        reply = self._reply
        if not text:
            # Noise, a cough, or speech the recogniser dropped: nothing to answer.
            if reply is not None and reply.speculative and not reply.committed:
                self.speculation.cancelled += 1
                self._drop_reply()
            return
        if reply is not None and reply.fixed_text is None and not reply.committed:
            if same_words(reply.user_text, text):
                self.speculation.kept += 1
                if reply.timeline is not None:
                    reply.timeline.speculative = True
                reply.finals_used = len(self._finals)
                reply.commit()
                self._stamp_stt_final()
                return
            self.speculation.restarted += 1
            self._drop_reply()
        elif reply is not None and not reply.speaking and reply.fixed_text is None:
            self._drop_reply()
        self._stamp_stt_final()
        self._start_reply(user_text=text, committed=True)

    def _stamp_stt_final(self) -> None:
        turn = self.session.current_turn
        if turn is not None:
            turn.stamp("stt_final", self._loop.time())

    async def _set_pci(self, on: bool) -> bool:
        """PCI mode: recording paused and key presses masked, while card details are given."""
        self.pci = on
        try:
            return await (self.actions.pause_recording() if on else self.actions.resume_recording()) and on
        except Exception as exc:
            self.errors.append(f"{'pause' if on else 'resume'}_recording: {exc}")
            return False

    def _keys_entered(self, digits: str) -> None:
        sequence = self.profile.config.pci_dtmf_sequence
        if sequence and digits.rstrip("#") == sequence:
            self._spawn(self._set_pci(not self.pci))
            return
        if self.pci:
            digits = "".join("•" if d.isdigit() else d for d in digits)  # never in the transcript
        self._finals.append(describe_keys(digits))
        if not self._turn_open and (self._reply is None or not self._reply.speaking):
            self._awaiting_commit = True
            self._final_since_finalize = True
            self._commit(False)

    def _dtmf_expired(self) -> None:
        self._dtmf_timer = None
        digits = self._dtmf.expire(self._loop.time())
        if digits:
            self._keys_entered(digits)

    # -- replies ----------------------------------------------------------------------------

    def _start_reply(
        self, *, user_text: str = "", speculative: bool = False, committed: bool,
        fixed_text: str | None = None, attempt: int = 0,
    ) -> _Reply:
        reply = _Reply(
            self, self._next_utterance, user_text=user_text, finals_used=len(self._finals),
            speculative=speculative, committed=committed, fixed_text=fixed_text, attempt=attempt,
        )
        self._next_utterance += 1
        self._reply = reply
        self.mode = "thinking"
        reply.start()
        return reply

    def _drop_reply(self) -> None:
        if self._reply is not None:
            self._reply.cancel()
            self._reply = None
        self.mode = "listening"

    def _speaking_started(self, reply: _Reply) -> None:
        self.mode = "speaking"
        if reply.fixed_text is None:
            self.conversation.add_user(reply.user_text)
            del self._finals[: reply.finals_used]
            self._interim = ""

    def _unsay(self, reply: _Reply) -> bool:
        """Take the reply's user message back out of the history, to merge with what follows."""
        messages = self.conversation.messages
        if not messages or messages[-1].get("role") != "user" or messages[-1].get("content") != reply.user_text:
            return False
        messages.pop()
        self._finals.insert(0, reply.user_text)
        return True

    def _messages_for(self, user_text: str) -> list[dict[str, Any]]:
        return self.conversation.for_model() + [{"role": "user", "content": user_text}]

    def _reply_failed(self, reply: _Reply, exc: BaseException) -> None:
        self.errors.append(f"reply {reply.utterance_id}: {exc}")
        if reply is not self._reply or self._stopped:
            return
        log.warning("call %s: provider failure (%s); attempt %d", self.call_control_id, exc, reply.attempt + 1)
        if reply.attempt == 0 and not reply.speaking:
            self._reply = None
            filler = self.phrases.get(self.profile.voice, self.sample_rate, self.profile.config.filler_text)
            if filler is not None and reply.committed:
                uid = self._next_utterance
                self._next_utterance += 1
                self.session.speak(uid, filler)
                self.session.finish_utterance(uid)
            self._start_reply(
                user_text=reply.user_text, speculative=reply.speculative, committed=reply.committed,
                fixed_text=reply.fixed_text, attempt=1,
            )
        else:
            self._fail(f"provider failure: {exc}")

    def _fail(self, reason: str) -> None:
        """Apologise and end the call cleanly; the reason is recorded."""
        if self._hangup_after is not None or self._stopped:
            return
        self.end_reason = reason
        self._failing = True
        self._drop_reply()
        apology = self.phrases.get(self.profile.voice, self.sample_rate, self.profile.config.apology_text)
        self._hangup_after = reason
        if apology is None or self.session.codec is None:
            self._spawn(self._end_call(reason))
            return
        # Hang up when the apology has played (its mark), or a little after it should have.
        seconds = len(apology) / 2 / self.sample_rate
        self._loop.call_later(seconds + 2.0, lambda: self._spawn(self._end_call(reason)))
        uid = self._next_utterance
        self._next_utterance += 1
        reply = _Reply(self, uid, user_text="", finals_used=0, speculative=False, committed=True,
                       fixed_text=self.profile.config.apology_text, attempt=-1)
        self._reply = reply  # so that its playout mark triggers the hang-up
        self.session.speak(uid, apology)
        self.session.finish_utterance(uid)

    # -- tools and call control ---------------------------------------------------------------

    async def _run_tools(self, calls: list[ToolCall], messages: list[dict[str, Any]]) -> bool:
        """Run the model's tool calls; True when the model should continue with the results."""
        follow_up = False
        for call in calls:
            if call.name == "end_call":
                self._hangup_after = "agent ended the call"
                self.end_reason = "agent ended the call"
            elif call.name == "transfer_call":
                target = _argument(call, "to") or self.profile.config.transfer_to
                if target:
                    self._transfer_after = target
                else:
                    self._record_tool(call, messages, "error: no transfer destination is configured")
                    follow_up = True
            elif call.name == "send_dtmf":
                digits = _argument(call, "digits") or ""
                self._spawn(self._send_dtmf(digits))
            elif call.name in ("pause_recording", "resume_recording"):
                paused = await self._set_pci(call.name == "pause_recording")
                self._record_tool(call, messages, "recording paused" if paused else
                                  ("recording resumed" if not self.pci else "the call is not being recorded"))
                follow_up = True
            else:
                tool = next((t for t in self.profile.config.http_tools if t.name == call.name), None)
                if tool is None:
                    result = f"error: unknown tool {call.name}"
                elif self.tool_client is None:
                    result = f"error: {call.name} is unavailable"
                else:
                    result = await self.tool_client.run(tool, call.arguments, self.tool_policy)
                self._record_tool(call, messages, result)
                follow_up = True
        return follow_up

    def _record_tool(self, call: ToolCall, messages: list[dict[str, Any]], result: str) -> None:
        self.conversation.add_tool_exchange(call.id, call.name, call.arguments, result)
        messages.extend(self.conversation.messages[-2:])

    async def _end_call(self, reason: str) -> None:
        if self._hung_up:
            return
        self._hung_up = True
        self.end_reason = self.end_reason or reason
        try:
            await self.actions.hangup(reason)
        except Exception as exc:  # the call may already be gone
            self.errors.append(f"hangup: {exc}")

    async def _transfer(self, to: str) -> None:
        self._transfer_after = None
        try:
            await self.actions.transfer(to)
            self.end_reason = f"transferred to {to}"
        except Exception as exc:
            self.errors.append(f"transfer: {exc}")

    async def _send_dtmf(self, digits: str) -> None:
        try:
            await self.actions.send_dtmf(digits)
        except Exception as exc:
            self.errors.append(f"send_dtmf: {exc}")

    def _max_duration_reached(self) -> None:
        if not self._stopped:
            self._fail("maximum call duration reached")

    # -- the end ------------------------------------------------------------------------------

    async def _finish(self) -> None:
        self._cancel_commit_timer()
        self._cancel_noise_timer()
        reply = self._reply
        if reply is not None:
            if reply.speaking and reply.fixed_text is None:
                # Cut off by the hang-up: the record keeps what the caller heard, as for a barge-in.
                try:
                    heard_ms = self.session.playout.heard_ms(reply.utterance_id, self._loop.time())
                except KeyError:
                    heard_ms = 0
                heard = reply.spoken.heard(heard_ms)
                self.conversation.add_assistant(heard, interrupted=True)
                self._report_turn(reply, heard, interrupted=True)
            reply.cancel()
            self._reply = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reports:  # the last turns' records go out before the call's report
            await asyncio.wait(set(self._reports), timeout=REPORT_TIMEOUT_S)
        if self._stt is not None:
            with contextlib.suppress(Exception):
                await self._stt.aclose()
        summary, outcome = await self._summarize()
        report = CallReport(
            call_control_id=self.call_control_id,
            transcript=self.conversation.transcript(),
            summary=summary,
            outcome=outcome,
            end_reason=self.end_reason or "hangup",
            turns=self._turn_index,
            speculation=self.speculation.as_dict(),
            errors=list(self.errors),
            usage=self.usage.as_dict(),
        )
        try:
            await self.reporter.finished(report)
        except Exception:
            log.exception("call %s: reporting the end of the call failed", self.call_control_id)

    async def _summarize(self) -> tuple[str | None, dict[str, Any] | None]:
        if not any(m["role"] == "user" for m in self.conversation.messages):
            return None, {"outcome": "no_conversation"}
        config = self.profile.config
        properties: dict[str, Any] = {
            "summary": {"type": "string", "description": "Two sentences on what happened."},
            "outcome": {"type": "string", "enum": list(config.outcome_values)},
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
            "follow_up": {"type": "string", "description": "What should happen next, or empty."},
        }
        for name, description in config.summary_fields.items():
            properties[name] = {"type": "string", "description": description}
        schema = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
        lines = "\n".join(f"{m['role']}: {m['text']}" for m in self.conversation.transcript())
        messages = [
            {"role": "system", "content": "Summarize this phone call and classify its outcome."},
            {"role": "user", "content": lines},
        ]
        try:
            result, usage = await asyncio.wait_for(self.llm.complete_json_with_usage(messages, schema),
                                                   3 * config.provider_deadline_s)
        except (ProviderError, TimeoutError, aiohttp.ClientError) as exc:
            self.errors.append(f"summary: {exc}")
            return None, None
        if usage is not None:
            self.usage.add_llm(usage)
        summary = result.pop("summary", None)
        return (summary if isinstance(summary, str) else None), result

    # -- plumbing -----------------------------------------------------------------------------

    def _report_turn(self, reply: _Reply, agent_text: str, *, interrupted: bool) -> None:
        self._turn_index += 1
        record = TurnRecord(
            index=self._turn_index, caller_text=reply.user_text, agent_text=agent_text,
            interrupted=interrupted, timeline=reply.timeline.as_dict() if reply.timeline else {},
            history=self.conversation.for_model()[1:],
        )
        task = asyncio.ensure_future(self.reporter.turn(self.call_control_id, record))
        self._reports.add(task)
        task.add_done_callback(self._report_done)

    def _report_done(self, task: asyncio.Task[Any]) -> None:
        self._reports.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: recording a turn failed", self.call_control_id, exc_info=task.exception())

    def _spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: background task failed", self.call_control_id, exc_info=task.exception())

    async def _deadline(self, awaitable: Awaitable[T]) -> T:
        return await asyncio.wait_for(awaitable, self.profile.config.provider_deadline_s)

    async def _stream_with_deadline(self, iterator: AsyncIterator[T]) -> AsyncIterator[T]:
        """Each item must arrive within the provider deadline, or the stream counts as stalled."""
        deadline = self.profile.config.provider_deadline_s
        try:
            while True:
                try:
                    async with asyncio.timeout(deadline):
                        item = await iterator.__anext__()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()


def _argument(call: ToolCall, name: str) -> str | None:
    try:
        value = orjson.loads(call.arguments or "{}").get(name)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None
