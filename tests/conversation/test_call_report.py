"""The call's report always goes out: whatever the summary step raises, the transcript, turns and
usage are recorded (in virtual time, with the fake providers of test_turn_hold)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.conversation.agent import CallAgent, finish_reports
from engine.conversation.config import AgentConfig, resolve
from engine.endpointing import EndpointEvent
from engine.protocol import Start
from engine.timeline import TurnTimeline
from engine.turn_outcome import Speculation, TurnEnd, TurnOutcome

from .test_turn_hold import Llm, Session, Stt, Tts


class BrokenSummaryLlm(Llm):
    """A model plugin whose JSON answer path has a bug (not a ProviderError)."""

    async def complete_json(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("choices")


class Recorder:
    def __init__(self) -> None:
        self.reports: list[Any] = []
        self.turns: list[Any] = []

    async def turn(self, call_control_id: str, record: Any) -> None:
        self.turns.append(record)

    async def finished(self, report: Any) -> None:
        self.reports.append(report)


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_a_summary_that_raises_still_leaves_the_calls_report(caplog):
    loop = asyncio.get_running_loop()
    stt, recorder = Stt(), Recorder()
    agent = CallAgent(resolve(AgentConfig()), stt=stt, llm=BrokenSummaryLlm(), tts=Tts(), reporter=recorder)
    agent.on_start(Session(), Start("s", "v3:call", "PCMU", 8000))  # type: ignore[arg-type]
    await asyncio.sleep(1.0)
    agent.on_endpoint(EndpointEvent.SPEECH_START, loop.time())
    stt.heard = "Where is my parcel?"
    await asyncio.sleep(1.0)
    agent.on_endpoint(EndpointEvent.TENTATIVE_END, loop.time())
    await asyncio.sleep(0.3)
    agent.on_endpoint(EndpointEvent.TURN_END, loop.time())
    await asyncio.sleep(3.0)
    agent.on_stop(loop.time())
    await finish_reports()

    (report,) = recorder.reports
    assert [m["text"] for m in report.transcript if m["role"] == "user"] == ["Where is my parcel?"]
    assert report.summary is None and report.outcome is None
    assert "summary: KeyError" in report.errors
    assert "the summary failed" in caplog.text


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_the_turn_record_says_how_the_turn_ended():
    loop = asyncio.get_running_loop()
    stt, recorder, session = Stt(), Recorder(), Session()
    session.current_turn = TurnTimeline(1)  # type: ignore[assignment]  # the turn the session measures
    agent = CallAgent(resolve(AgentConfig()), stt=stt, llm=Llm(), tts=Tts(), reporter=recorder)
    agent.on_start(session, Start("s", "v3:call", "PCMU", 8000))  # type: ignore[arg-type]
    await asyncio.sleep(1.0)
    agent.on_endpoint(EndpointEvent.SPEECH_START, loop.time())
    stt.heard = "Where is my parcel?"
    await asyncio.sleep(1.0)
    agent.on_endpoint(EndpointEvent.TENTATIVE_END, loop.time())  # the reply starts on its final
    await asyncio.sleep(0.3)
    agent.on_endpoint(EndpointEvent.TURN_END, loop.time())
    await asyncio.sleep(3.0)
    agent.on_stop(loop.time())
    await finish_reports()

    (record,) = recorder.turns
    assert record.caller_text == "Where is my parcel?"
    assert record.outcome == TurnOutcome(TurnEnd.VAD, Speculation.KEPT)
    assert record.timeline["outcome"] == {"end": "vad", "hold": None, "contour": False, "speculation": "kept",
                                         "merged": False}
