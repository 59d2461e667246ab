"""The agent answers every turn exactly once, whatever the STT engine can do (issue 13, item 2).

In virtual time: the event loop's clock jumps to the next timer instead of sleeping, so the
recogniser's lag, the agent's bounded waits and the providers' delays are exact, and a
1.5 s wait costs nothing. The endpointer's events are fed as the session would; the
recogniser is scripted per engine: Deepgram answers a Finalize 100 ms later, a finals-only
engine (Telnyx, Google) sends each final when its own segmentation says, however late."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.caller_voice import CallerVoice
from engine.conversation.agent import CallAgent
from engine.conversation.config import AgentConfig, resolve
from engine.endpointing import EndpointEvent
from engine.providers.base import (
    AudioChunk,
    ChatDelta,
    ChatModel,
    SpeechToText,
    SttSession,
    TextToSpeech,
    Transcript,
    TtsStream,
)
from engine.providers.stt_engines import stt_engine

LLM_FIRST_TOKEN_S = 0.15
TTS_FIRST_AUDIO_S = 0.1
REPLY_AUDIO = bytes(8000)  # 0.5 s at 8 kHz


# -- virtual time -----------------------------------------------------------------------


# The recogniser's lag, the agent's bounded waits and the providers' delays run on the virtual
# clock of bench/virtual_time.py: every async test here is marked with VIRTUAL.
VIRTUAL = pytest.mark.asyncio(loop_factories=["virtual"])


# -- fakes: a scripted recogniser, an LLM and a TTS with fixed delays, a playout ------------


class ScriptedStt(SpeechToText):
    """Capabilities from the engine table; finals only when the test (or a Finalize) sends them."""

    def __init__(self, engine: str) -> None:
        table = stt_engine(engine)
        self.can_finalize = table.finalize
        self.interim_results = table.interim_results
        if not table.finalize:
            self.final_wait_s = table.final_wait_s
        self.session: ScriptedSttSession | None = None

    async def open(self, *, sample_rate, on_transcript, on_error) -> SttSession:
        self.session = ScriptedSttSession(self, on_transcript)
        return self.session


class ScriptedSttSession(SttSession):
    def __init__(self, stt: ScriptedStt, on_transcript: Any) -> None:
        self.stt = stt
        self.on_transcript = on_transcript
        self.pending = ""  # words heard since the last final
        self.finalizes = 0

    def feed(self, pcm: bytes) -> None:
        pass

    async def finalize(self) -> None:
        self.finalizes += 1
        if self.stt.can_finalize and self.pending:  # Deepgram: the final 100 ms later
            text, self.pending = self.pending, ""
            asyncio.get_running_loop().call_later(0.1, self.on_transcript, Transcript(text, True))

    def final(self, text: str) -> None:
        """The engine's own final (its segmentation, its timing)."""
        self.pending = ""
        self.on_transcript(Transcript(text, True))

    async def aclose(self) -> None:
        pass


class ScriptedLlm(ChatModel):
    def __init__(self) -> None:
        self.requests: list[str] = []

    async def stream(self, messages, *, tools=None) -> AsyncIterator[ChatDelta]:
        self.requests.append(messages[-1]["content"])
        await asyncio.sleep(LLM_FIRST_TOKEN_S)
        yield ChatDelta(text="Sure, one moment.")
        yield ChatDelta(finish_reason="stop")

    async def complete_json(self, messages, schema):
        return {}


class _TtsStream(TtsStream):
    sample_rate = 8000

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def send_text(self, text: str, *, flush: bool = False) -> None:
        await asyncio.sleep(TTS_FIRST_AUDIO_S)
        self.queue.put_nowait(REPLY_AUDIO)

    async def end(self) -> None:
        self.queue.put_nowait(None)

    async def _chunks(self) -> AsyncIterator[AudioChunk]:
        while (pcm := await self.queue.get()) is not None:
            yield AudioChunk(pcm)

    def __aiter__(self) -> AsyncIterator[AudioChunk]:
        return self._chunks()

    async def aclose(self) -> None:
        pass


class ScriptedTts(TextToSpeech):
    async def open(self, *, voice: str, sample_rate: int) -> TtsStream:
        return _TtsStream()


class Playout:
    """The session's side: audio plays in real (virtual) time, then its mark comes back."""

    def __init__(self) -> None:
        self.agent: CallAgent | None = None
        self.current_turn = None
        self.barge_in_deferred = False
        self.pause_run_quiet = False
        self.caller_voice = CallerVoice()  # never fed: the caller's voice is not measured here
        self.codec = None
        self.first_audio: dict[int, float] = {}
        self.queued: dict[int, int] = {}

    def caller_tail(self) -> bytes:
        return b""  # no caller audio here: the contour is unknown and the words decide

    def speak(self, uid: int, pcm: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.first_audio.setdefault(uid, loop.time())
        self.queued[uid] = self.queued.get(uid, 0) + len(pcm)

    def finish_utterance(self, uid: int) -> None:
        loop = asyncio.get_running_loop()
        seconds = self.queued.get(uid, 0) / 16000
        loop.call_later(seconds, lambda: self.agent.on_playout_done(uid, loop.time()))


class Recorder:
    def __init__(self) -> None:
        self.turns: list[Any] = []

    async def turn(self, call_control_id, record) -> None:
        self.turns.append(record)

    async def finished(self, report) -> None:
        pass


class Actions:
    def __init__(self) -> None:
        self.hangups: list[str] = []

    async def hangup(self, reason: str) -> None:
        self.hangups.append(reason)


class Call:
    """One agent with the fakes, and a caller who speaks in turns."""

    def __init__(self, engine: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.stt = ScriptedStt(engine)
        self.llm = ScriptedLlm()
        self.playout = Playout()
        # (No opening guess: these count the model's requests per rule; the guess has its own tests.)
        self.agent = CallAgent(resolve(AgentConfig(opening_guess=None)), stt=self.stt, llm=self.llm, tts=ScriptedTts(),
                               actions=Actions(), reporter=Recorder())
        self.playout.agent = self.agent
        self.agent.session, self.agent._loop = self.playout, self.loop  # as on_start does
        self.agent.call_control_id = "v3:test"

    async def start(self) -> None:
        await self.agent.recogniser.open(8000, 2.0)

    @property
    def session(self) -> ScriptedSttSession:
        assert self.stt.session is not None
        return self.stt.session

    def endpoint(self, event: EndpointEvent) -> None:
        self.agent.on_endpoint(event, self.loop.time())

    async def speak(self, text: str, seconds: float = 1.0, *, interims: bool = False) -> float:
        """The caller talks ``seconds`` (with interims per 0.3 s if the engine sends them), then
        is silent: tentative end after 20 ms, end of turn after 300 ms. Returns the end of speech."""
        self.endpoint(EndpointEvent.SPEECH_START)
        words = text.split()
        steps = max(1, int(seconds / 0.3))
        for i in range(steps):
            await asyncio.sleep(seconds / steps)
            if interims and text:
                self.agent._on_transcript(Transcript(" ".join(words[: len(words) * (i + 1) // steps]), False))
        self.session.pending = text
        end = self.loop.time()
        await asyncio.sleep(0.02)
        self.endpoint(EndpointEvent.TENTATIVE_END)
        await asyncio.sleep(0.28)
        self.endpoint(EndpointEvent.TURN_END)
        return end

    async def babble(self, pauses: int) -> None:
        """The VAD flapping in babble: a pause every 0.2 s, never 300 ms of silence."""
        for _ in range(pauses):
            await asyncio.sleep(0.1)
            self.endpoint(EndpointEvent.TENTATIVE_END)
            await asyncio.sleep(0.1)
            self.endpoint(EndpointEvent.SPEECH_RESUMED)

    def final_at(self, when: float, text: str) -> None:
        """The engine's own final, at an absolute (virtual) time."""
        self.loop.call_at(when, self.session.final, text)

    def answered(self) -> list[str]:
        return [t.caller_text for t in self.agent.reporter.turns]

    async def finish(self) -> None:
        await asyncio.sleep(5)  # every reply played, every timer run
        self.agent.on_stop(self.loop.time())
        await asyncio.sleep(1)

    def first_audio_after(self, t: float) -> float:
        return min(at for at in self.playout.first_audio.values() if at >= t)


# -- the tests ----------------------------------------------------------------------------


@VIRTUAL
async def test_deepgram_turns_commit_on_the_forced_final_and_an_unanswered_finalize_costs_one_wait():
    call = Call("Deepgram")
    await call.start()
    end = await call.speak("I'd like to check my order.", interims=True)
    await asyncio.sleep(3)
    # The final 100 ms after the tentative end's Finalize; the reply was speculated on it.
    assert call.first_audio_after(end) - end == pytest.approx(0.3, abs=0.01)
    # A cough: the VAD opened a turn, the recogniser heard nothing and answers no Finalize.
    await call.speak("", seconds=0.3)
    await asyncio.sleep(3)
    end = await call.speak("It's number four two seven.", interims=True)
    await call.finish()
    assert call.session.finalizes >= 3
    assert call.answered() == ["I'd like to check my order.", "It's number four two seven."]
    assert call.first_audio_after(end) - end == pytest.approx(0.3, abs=0.01)  # not stuck on the cough
    assert not call.agent.errors and not call.agent.actions.hangups


@pytest.mark.parametrize("engine", ["Telnyx", "Google"])
@VIRTUAL
async def test_finals_only_engine_every_turn_answered_once_however_late_its_finals(engine):
    table = stt_engine(engine)
    lag = table.final_lag_ms / 1000

    call = Call(engine)
    await call.start()
    # 1. The usual case: the final comes the engine's lag after the end of speech, well
    #    after the VAD's end of turn. The agent waits for it, then answers at once.
    end = call.loop.time() + 1.0
    call.final_at(end + lag, "I'd like to check my order.")
    await call.speak("I'd like to check my order.")
    await asyncio.sleep(3)
    assert call.first_audio_after(end) == pytest.approx(end + lag + LLM_FIRST_TOKEN_S + TTS_FIRST_AUDIO_S,
                                                        abs=0.01)
    # 2. A turn with no words (a cough): no final ever comes. The agent waits its bound,
    #    answers nothing, and does not treat the silence as a failure.
    await call.speak("", seconds=0.3)
    await asyncio.sleep(3)
    # 3. A final later than the agent's bound: the turn committed empty; the final, when it
    #    comes, is answered then (once).
    end = call.loop.time() + 1.0
    late = end + 0.3 + table.final_wait_s + 0.5
    call.final_at(late, "Tomorrow works.")
    await call.speak("Tomorrow works.")
    await asyncio.sleep(4)
    assert call.first_audio_after(end) == pytest.approx(late + LLM_FIRST_TOKEN_S + TTS_FIRST_AUDIO_S, abs=0.01)
    # 4. The caller goes on after a short pause whose final came in it; the newer words'
    #    final comes after the agent answered the first part, while its reply plays: those
    #    words are kept and join the caller's next turn, not dropped, not answered alone.
    call.endpoint(EndpointEvent.SPEECH_START)
    await asyncio.sleep(1.0)
    call.endpoint(EndpointEvent.TENTATIVE_END)
    await asyncio.sleep(0.1)
    call.session.final("My number is four two seven.")
    await asyncio.sleep(0.1)
    call.endpoint(EndpointEvent.SPEECH_RESUMED)
    await asyncio.sleep(0.6)
    end = call.loop.time()
    # (the reply's audio starts 0.25 s after the commit and plays 0.5 s)
    mid_reply = end + 0.3 + table.final_wait_s + LLM_FIRST_TOKEN_S + TTS_FIRST_AUDIO_S + 0.25
    call.final_at(mid_reply, "And the zip is nine oh two one oh.")
    await asyncio.sleep(0.02)
    call.endpoint(EndpointEvent.TENTATIVE_END)
    await asyncio.sleep(0.28)
    call.endpoint(EndpointEvent.TURN_END)
    await asyncio.sleep(4)
    assert call.answered()[-1] == "My number is four two seven."
    assert call.playout.first_audio[max(call.playout.first_audio)] < mid_reply  # it came mid-reply
    end = call.loop.time() + 1.0
    call.final_at(end + lag, "Thanks.")
    await call.speak("Thanks.")
    await call.finish()
    assert call.answered() == [
        "I'd like to check my order.",
        "Tomorrow works.",
        "My number is four two seven.",
        "And the zip is nine oh two one oh. Thanks.",
    ]
    assert len(call.llm.requests) == len(set(call.llm.requests))  # no text answered twice
    assert call.session.finalizes >= 1  # flushes only: the engine would ignore a Finalize
    assert not call.agent.errors and not call.agent.actions.hangups and call.agent.end_reason == "hangup"


@VIRTUAL
async def test_finals_only_engine_does_not_commit_on_a_final_heard_while_the_caller_still_talks():
    # A final for earlier words lands while the VAD hears the caller again: the turn still owes
    # the final of the newer words, and waits for it rather than answering half the turn.
    call = Call("Telnyx")
    await call.start()
    call.endpoint(EndpointEvent.SPEECH_START)
    await asyncio.sleep(0.8)
    call.endpoint(EndpointEvent.TENTATIVE_END)
    await asyncio.sleep(0.2)
    call.endpoint(EndpointEvent.SPEECH_RESUMED)
    await asyncio.sleep(0.3)
    call.session.final("I moved last month")  # for the words before the pause
    await asyncio.sleep(0.7)
    end = call.loop.time()
    call.final_at(end + 1.0, "so the address changed.")
    await asyncio.sleep(0.02)
    call.endpoint(EndpointEvent.TENTATIVE_END)
    await asyncio.sleep(0.28)
    call.endpoint(EndpointEvent.TURN_END)
    await call.finish()
    assert call.answered() == ["I moved last month so the address changed."]
    assert call.llm.requests[-1] == "I moved last month so the address changed."


@pytest.mark.parametrize("engine, confirmed", [("Deepgram", False), ("Telnyx", True), ("Google", True)])
@VIRTUAL
async def test_a_barge_in_waits_for_words_only_where_words_can_come_in_time(engine, confirmed):
    # With interim results, a barge-in the VAD confirms waits (bounded) for the recogniser's
    # words, so noise does not cut the reply. A finals-only engine sends the caller's words
    # after they stop talking: waiting for them would keep the agent talking over the caller.
    call = Call(engine)
    await call.start()
    call.endpoint(EndpointEvent.BARGE_IN_PENDING)
    await asyncio.sleep(0.4)
    assert call.agent.confirm_barge_in() is confirmed
    call.agent.timers.cancel_all()


@VIRTUAL
async def test_finals_only_engine_ends_a_turn_the_vad_keeps_open_in_babble():
    # In a cafe the VAD hears "speech" on and off without a 300 ms gap, so it never ends the
    # turn. The engine's own final (it segments on the talker) says the speech ended: once the
    # VAD's turn is older than the engine's lag, it heard noise through that silence.
    call = Call("Telnyx")
    await call.start()
    call.endpoint(EndpointEvent.SPEECH_START)
    end = call.loop.time() + 1.2
    call.final_at(end + 1.0, "Hi, I'm calling about my table.")
    await call.babble(10)  # 2 s of flapping
    await asyncio.sleep(0.1)
    call.endpoint(EndpointEvent.TENTATIVE_END)
    await asyncio.sleep(0.15)  # the final lands in this pause
    assert call.llm.requests == ["Hi, I'm calling about my table."]  # committed on the final
    call.endpoint(EndpointEvent.TURN_END)  # the babble pauses on: the VAD ends the turn late
    await call.finish()
    assert call.answered() == ["Hi, I'm calling about my table."]
    assert call.llm.requests == ["Hi, I'm calling about my table."]  # not restarted by it
    assert call.first_audio_after(end) == pytest.approx(end + 1.0 + LLM_FIRST_TOKEN_S + TTS_FIRST_AUDIO_S,
                                                        abs=0.11)


async def test_finals_only_engine_leaves_the_turn_open_on_a_final_while_the_callers_voice_is_heard():
    # As above, but the session heard the caller's own voice (far over the line's background)
    # just before the final: the engine cut the line where their voice dropped, and they talk on.
    call = Call("Telnyx")
    await call.start()
    call.endpoint(EndpointEvent.SPEECH_START)
    end = call.loop.time() + 1.2
    call.final_at(end + 1.0, "No, I don't want to")
    await call.babble(10)
    call.playout.caller_voice.voice_at = call.loop.time()
    await asyncio.sleep(0.1)
    call.endpoint(EndpointEvent.TENTATIVE_END)
    await asyncio.sleep(0.15)  # the final lands in this pause, 0.25 s after their voice
    assert call.llm.requests == []
    call.endpoint(EndpointEvent.TURN_END)  # the VAD's end decides
    await call.finish()
    assert call.answered() == ["No, I don't want to"]

