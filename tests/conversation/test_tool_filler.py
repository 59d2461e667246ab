"""The filler line while a tool runs (issue 18, item 2), through the real CallAgent in virtual time:
a tool slower than ``tool_filler_after_ms`` makes the agent say "One moment while I check that."
as part of its reply, once; a quick tool does not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.conversation.agent import CallAgent
from engine.conversation.config import AgentConfig, HttpTool, resolve
from engine.conversation.phrases import PhraseCache
from engine.endpointing import EndpointEvent
from engine.providers.base import ChatDelta, ChatModel, ToolCall

from .test_stt_engine_turns import Actions, Playout, Recorder, ScriptedStt, ScriptedTts

pytestmark = pytest.mark.asyncio(loop_factories=["virtual"])  # the tool and reply timings in virtual time

FILLER = "One moment while I check that."


class ToolLlm(ChatModel):
    """Calls the order tool (after ``preamble``, if any), then says what it returned."""

    def __init__(self, preamble: str = "") -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.preamble = preamble

    async def stream(self, messages, *, tools=None) -> AsyncIterator[ChatDelta]:
        self.requests.append(messages)
        await asyncio.sleep(0.15)
        if messages[-1].get("role") == "tool":
            yield ChatDelta(text=f"Your order {messages[-1]['content']}.")
        else:
            if self.preamble:
                yield ChatDelta(text=self.preamble)
            yield ChatDelta(tool_calls=(ToolCall("c1", "order_status", '{"order": "42"}'),))
        yield ChatDelta(finish_reason="stop")

    async def complete_json(self, messages, schema):
        return {}


class SlowTools:
    def __init__(self, seconds: float, result: str = "ships tomorrow") -> None:
        self.seconds = seconds
        self.result = result
        self.called_at: list[float] = []

    async def call(self, config, name, arguments, context=None, policy=None) -> str:
        self.called_at.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.seconds)
        return self.result


async def call_with_tool(tool_seconds: float, result: str = "ships tomorrow", *, preamble: str = "",
                         pause_s: float = 0.28, **config: Any) -> tuple[CallAgent, Playout]:
    tool = HttpTool(name="order_status", description="Order status.", url="https://tools.example.com/o")
    profile = resolve(AgentConfig(http_tools=(tool,), **config))
    tts = ScriptedTts()
    phrases = PhraseCache(tts)
    await phrases.warm(profile.voice, 8000, [profile.config.tool_filler_text])
    playout = Playout()
    agent = CallAgent(profile, stt=ScriptedStt("Deepgram"), llm=ToolLlm(preamble), tts=tts, actions=Actions(),
                      reporter=Recorder(), phrases=phrases, tool_client=SlowTools(tool_seconds, result))
    playout.agent = agent
    loop = asyncio.get_running_loop()
    agent.session, agent._loop = playout, loop
    agent._may_guess = True  # (as the call's setup does for an agent with no line to open with)
    agent.policy.reconfigure(agent._turn_config())
    await agent.recogniser.open(8000, 2.0)
    agent.on_endpoint(EndpointEvent.SPEECH_START, loop.time())
    await asyncio.sleep(1.0)
    agent.stt.session.pending = "Where is order forty two?"
    agent.on_endpoint(EndpointEvent.TENTATIVE_END, loop.time())
    await asyncio.sleep(pause_s)
    agent.on_endpoint(EndpointEvent.TURN_END, loop.time())
    agent.turn_ended_at = loop.time()  # (for the tests: when the turn was committed)
    await asyncio.sleep(8)
    agent.on_stop(loop.time())
    await asyncio.sleep(1)
    return agent, playout



async def test_a_slow_tool_gets_the_filler_line_once_inside_the_reply():
    agent, playout = await call_with_tool(4.0)  # longer than the provider deadline (2 s): no stall either
    assert not agent.errors
    (turn,) = agent.reporter.turns
    assert turn.agent_text == f"{FILLER} Your order ships tomorrow."
    assert agent.conversation.transcript()[-1]["text"] == turn.agent_text
    assert len(playout.first_audio) == 1  # one utterance: the filler is part of the reply


async def test_a_quick_tool_gets_no_filler():
    agent, _ = await call_with_tool(0.5)
    (turn,) = agent.reporter.turns
    assert turn.agent_text == "Your order ships tomorrow."


async def test_the_filler_can_be_turned_off():
    agent, _ = await call_with_tool(4.0, tool_filler_after_ms=0)
    assert agent.reporter.turns[0].agent_text == "Your order ships tomorrow."


async def test_a_tool_error_goes_back_to_the_model_as_a_result_it_can_talk_about():
    # (ToolClient turns timeouts and failures into such text: tests/conversation/test_http_tools.py)
    agent, _ = await call_with_tool(0.1, result="error: order_status is unavailable (TimeoutError)")
    tool_messages = [m for m in agent.conversation.messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["error: order_status is unavailable (TimeoutError)"]
    assert "is unavailable" in agent.reporter.turns[0].agent_text  # spoken about, not a failed reply
    assert not agent.errors


async def test_a_speculative_reply_runs_its_tools_only_once_its_turn_is_committed():
    # The model answers with a tool call at once (the guess on "Hello?" as the caller starts, then
    # the speculation at the pause): a tool acts on the world and writes the history, so neither
    # runs it while the caller may still change their words. The dropped guess never does.
    agent, _ = await call_with_tool(0.1)
    tools = agent.call_tools.client
    assert [round(t - agent.turn_ended_at, 3) for t in tools.called_at] == [0.0]
    assert [m["content"] for m in agent.conversation.messages if m["role"] == "tool"] == ["ships tomorrow"]
    (turn,) = agent.reporter.turns
    assert turn.agent_text == "Your order ships tomorrow."
    assert len(agent.llm.requests) == 3  # the guess (dropped), the speculation, its tool round


async def test_without_the_guess_the_speculation_still_waits_for_the_commit_to_run_its_tool():
    agent, _ = await call_with_tool(0.1, opening_guess=None)
    assert [round(t - agent.turn_ended_at, 3) for t in agent.call_tools.client.called_at] == [0.0]
    assert len(agent.llm.requests) == 2


async def test_a_speculative_reply_that_spoke_before_its_tool_call_waits_for_the_commit_without_a_stall():
    # "Let me check." is synthesised and held, then the tool waits for the commit, which comes 3 s
    # later (a hold, a long pause): the TTS's silence meanwhile is no provider stall.
    agent, playout = await call_with_tool(0.1, preamble="Let me check.", pause_s=3.0, opening_guess=None)
    assert not agent.errors
    (turn,) = agent.reporter.turns
    assert turn.agent_text == "Let me check. Your order ships tomorrow."
    assert [round(t - agent.turn_ended_at, 3) for t in agent.call_tools.client.called_at] == [0.0]
    assert len(playout.first_audio) == 1  # one utterance, the held words first
