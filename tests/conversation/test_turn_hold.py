"""The agent's end-of-turn wait, in virtual time: a finished line is answered at the end of
turn whether or not the recogniser punctuates it; an unfinished one is waited for.

The CallAgent runs on an event loop whose clock jumps to the next timer when nothing is
ready, with fake providers: a recogniser that finalizes 100 ms after ``Finalize`` (the
Deepgram-like fast path), a model whose first token takes 150 ms and a TTS whose first
audio takes 100 ms. The endpointer's events are fed at scripted times.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from engine.caller_voice import CallerVoice
from engine.config import EndpointingConfig, EngineConfig
from engine.conversation.agent import CallAgent, finish_reports
from engine.conversation.config import AgentConfig, resolve
from engine.endpointing import EndpointEvent
from engine.protocol import Start
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

STT_FINAL_S = 0.1
LLM_FIRST_TOKEN_S = 0.15
TTS_FIRST_AUDIO_S = 0.1
TENTATIVE_S = 0.02  # the endpointer's defaults: tentative end, then end of turn, after the last voice
END_OF_TURN_S = 0.3
HOLD_S = 0.7
SPECULATIVE_READY_S = TENTATIVE_S - END_OF_TURN_S + STT_FINAL_S + LLM_FIRST_TOKEN_S + TTS_FIRST_AUDIO_S
"""When a reply started on the tentative end's final has audio, from the end of turn (+70 ms)."""


# Time moves only when the loop would wait, straight to the next timer: every test here runs on the
# virtual-time loop of bench/virtual_time.py.
VIRTUAL = pytest.mark.asyncio(loop_factories=["virtual"])


class Stt(SpeechToText, SttSession):
    """Words the test says are "heard"; a Finalize returns them as a final 100 ms later."""

    def __init__(self) -> None:
        self.heard = ""
        self.on_transcript: Any = None

    async def open(self, *, sample_rate: int, on_transcript: Any, on_error: Any) -> SttSession:
        self.on_transcript = on_transcript
        return self

    def feed(self, pcm: bytes) -> None:
        pass

    async def finalize(self) -> None:
        text, self.heard = self.heard, ""
        asyncio.get_running_loop().call_later(STT_FINAL_S, self.on_transcript, Transcript(text, True))

    async def aclose(self) -> None:
        pass


class Llm(ChatModel):
    def __init__(self) -> None:
        self.requests: list[str] = []

    async def stream(self, messages: list[dict[str, Any]], *, tools: Any = None) -> AsyncIterator[ChatDelta]:
        self.requests.append(messages[-1]["content"])
        await asyncio.sleep(LLM_FIRST_TOKEN_S)
        yield ChatDelta("Sure, one moment.", finish_reason="stop")

    async def complete_json(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
        return {}


class TtsStreamFake(TtsStream):
    sample_rate = 8000

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def send_text(self, text: str, *, flush: bool = False) -> None:
        asyncio.get_running_loop().call_later(TTS_FIRST_AUDIO_S, self.queue.put_nowait, b"\x01\x00" * 800)

    async def end(self) -> None:
        asyncio.get_running_loop().call_later(TTS_FIRST_AUDIO_S + 0.001, self.queue.put_nowait, None)

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:  # type: ignore[override]
        while (pcm := await self.queue.get()) is not None:
            yield AudioChunk(pcm)

    async def aclose(self) -> None:
        self.queue.put_nowait(None)


class Tts(TextToSpeech):
    async def open(self, *, voice: str, sample_rate: int) -> TtsStream:
        return TtsStreamFake()


class Playout:
    def heard_ms(self, utterance_id: int, now: float) -> float:
        return 0.0


class Session:
    """What the agent uses of MediaSession: it records when reply audio goes out."""

    codec = None
    playout = Playout()
    current_turn = None
    barge_in_deferred = False
    pause_run_quiet = False

    def __init__(self) -> None:
        self.spoken_at: list[float] = []
        self.caller_voice = CallerVoice()  # never fed: the caller's voice is not measured here

    def speak(self, utterance_id: int, pcm: bytes) -> None:
        self.spoken_at.append(asyncio.get_running_loop().time())

    def finish_utterance(self, utterance_id: int) -> None:
        pass

    def resume_after_hold(self) -> None:
        pass

    def caller_tail(self) -> bytes:
        return b""  # no caller audio here: the contour is unknown and the words decide


class EndingSession(Session):
    """A session with the engine's endpointing settings, recording when the agent asks for the
    shorter end of a surely finished turn."""

    config = EngineConfig(endpointing=EndpointingConfig(confident_end_of_turn_ms=200))

    def __init__(self) -> None:
        super().__init__()
        self.sooner_at: list[float] = []

    def end_turn_sooner(self) -> None:
        self.sooner_at.append(asyncio.get_running_loop().time())


async def call_until(agent: CallAgent, done: Callable[[], object], step_s: float) -> float:
    """Start ``agent`` on a stand-in session, let it run (virtual time) until ``done()``, looked at
    every ``step_s``, then stop it and finish its reports. When it started."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    agent.on_start(Session(), Start("s", "v3:call", "PCMU", 8000))  # type: ignore[arg-type]
    while not done():
        await asyncio.sleep(step_s)
    agent.on_stop(loop.time())
    await finish_reports()
    return began


async def converse(turns: list[tuple[float, str, float]], *, session: Session | None = None,
                   **config: Any) -> tuple[Session, Llm, list[float]]:
    """Run one call: each turn is (speech start, words heard by the end, speech length). The
    tentative end and end of turn follow the speech at the endpointer's default silences,
    unless the next turn's speech starts first (then the caller resumed: SPEECH_START).
    Returns the session, the model, and each turn's end-of-turn time."""
    loop = asyncio.get_running_loop()
    session, llm, stt = session or Session(), Llm(), Stt()
    # (No opening guess unless asked: these count the model's requests; the guess has its own tests.)
    agent = CallAgent(resolve(AgentConfig(**{"opening_guess": None, **config})), stt=stt, llm=llm, tts=Tts())
    ends: list[float] = []

    async def call() -> None:
        agent.on_start(session, Start("s", "v3:call", "PCMU", 8000))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        now = 0.0
        for i, (start, words, length) in enumerate(turns):
            await asyncio.sleep(start - now)
            resumed = i and turns[i - 1][0] + turns[i - 1][2] + END_OF_TURN_S > start
            agent.on_endpoint(EndpointEvent.SPEECH_RESUMED if resumed else EndpointEvent.SPEECH_START, loop.time())
            stt.heard = words
            await asyncio.sleep(length + TENTATIVE_S)
            agent.on_endpoint(EndpointEvent.TENTATIVE_END, loop.time())
            now = start + length + TENTATIVE_S
            following = turns[i + 1][0] if i + 1 < len(turns) else None
            if following is None or following > start + length + END_OF_TURN_S:
                await asyncio.sleep(END_OF_TURN_S - TENTATIVE_S)
                agent.on_endpoint(EndpointEvent.TURN_END, loop.time())
                now = loop.time()
                ends.append(now)
        await asyncio.sleep(5.0)
        agent.on_stop(loop.time())
        await finish_reports()

    await call()
    return session, llm, ends


@VIRTUAL
async def test_an_unpunctuated_finished_line_is_answered_at_the_end_of_turn_without_the_hold():
    # Fails before the end-of-turn judgement: no final stop meant "mid-sentence", so the reply
    # waited the whole 700 ms hold (and was not prepared speculatively).
    session, llm, (end,) = await converse([(1.0, "hey there so i got a text saying my package was delayed", 2.0)])
    # Speculation started on the final, 100 ms after the tentative end: the reply's audio is
    # out as soon as it is ready, 70 ms after the end of turn.
    assert session.spoken_at[0] == pytest.approx(end + SPECULATIVE_READY_S, abs=0.005)
    assert llm.requests == ["hey there so i got a text saying my package was delayed"]


@VIRTUAL
async def test_a_punctuated_finished_line_is_answered_at_the_end_of_turn_as_before():
    session, _, (end,) = await converse([(1.0, "My package was delayed.", 2.0)])
    assert session.spoken_at[0] == pytest.approx(end + SPECULATIVE_READY_S, abs=0.005)


@pytest.mark.parametrize("words", ["my order number is", "The order number is..."])
@VIRTUAL
async def test_a_caller_who_stops_on_my_order_number_is_gets_the_hold(words):
    session, _, (end,) = await converse([(1.0, words, 1.5)])
    assert session.spoken_at[0] == pytest.approx(end + HOLD_S, abs=0.005)


@VIRTUAL
async def test_a_number_that_may_go_on_waits_half_the_hold():
    session, _, (end,) = await converse([(1.0, "the order number is four seven two", 1.5)])
    assert session.spoken_at[0] == pytest.approx(end + HOLD_S / 2, abs=0.005)


@VIRTUAL
async def test_without_the_hold_setting_every_line_is_answered_at_the_end_of_turn():
    session, _, (end,) = await converse([(1.0, "my order number is", 1.5)], incomplete_turn_hold_ms=0)
    assert session.spoken_at[0] == pytest.approx(end + SPECULATIVE_READY_S, abs=0.005)


@pytest.mark.parametrize("pause_s", [0.4, 0.55, 0.7, 0.9])
@VIRTUAL
async def test_a_caller_who_goes_on_within_the_hold_gets_one_reply_to_the_whole_line(pause_s):
    # "my order number is ... four seven two nine one eight": the pause is past the end of turn
    # (300 ms) but within the hold. Nothing may be said over the caller; one reply answers both.
    first = (1.0, "my order number is", 1.5)
    second_start = first[0] + first[2] + pause_s
    session, llm, ends = await converse([first, (second_start, "four seven two nine one eight", 1.8)])
    assert all(at >= second_start + 1.8 for at in session.spoken_at)
    assert llm.requests[-1] == "my order number is four seven two nine one eight"
    # six digits: a whole number, answered at the end of turn
    assert session.spoken_at[0] == pytest.approx(ends[-1] + SPECULATIVE_READY_S, abs=0.005)


@VIRTUAL
async def test_a_question_asks_the_session_for_the_shorter_end_once_its_reply_has_audio(monkeypatch):
    # A model fast enough that the reply started on the final (3.12) has audio (3.27) before
    # the VAD's end of turn (3.3): the session is asked to end the turn then.
    monkeypatch.setattr(sys.modules[__name__], "LLM_FIRST_TOKEN_S", 0.05)
    session = EndingSession()
    await converse([(1.0, "Could we move it to Friday morning instead?", 2.0)], session=session)
    assert session.sooner_at == [pytest.approx(3.0 + TENTATIVE_S + STT_FINAL_S + 0.05 + TTS_FIRST_AUDIO_S,
                                               abs=0.005)]
    assert len(session.spoken_at) == 1  # answered once


@VIRTUAL
async def test_a_question_whose_reply_is_not_ready_by_the_end_of_turn_asks_for_nothing():
    session = EndingSession()
    _, _, (end,) = await converse([(1.0, "Could we move it to Friday morning instead?", 2.0)], session=session)
    assert session.sooner_at == []
    assert session.spoken_at == [pytest.approx(end + SPECULATIVE_READY_S, abs=0.005)]


@VIRTUAL
async def test_a_statement_waits_for_the_vads_end_of_turn():
    session = EndingSession()
    await converse([(1.0, "I'd like to move it to Friday morning.", 2.0)], session=session)
    assert session.sooner_at == []
