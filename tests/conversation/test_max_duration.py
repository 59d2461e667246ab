"""The call's ``max_duration_s`` in virtual time: it counts from the call's answer, so an agent that
picks a call up again (after a crash or a dropped stream) hangs up when the call's limit is reached,
not a whole limit after the new stream began."""

from __future__ import annotations

import asyncio

import pytest

from engine.conversation.agent import CallAgent
from engine.conversation.config import AgentConfig, resolve
from engine.conversation.ports import CallSetup, NoReporter
from engine.protocol import Start

from .test_turn_hold import Llm, Stt, Tts, call_until

VIRTUAL = pytest.mark.asyncio(loop_factories=["virtual"])


class Actions:
    def __init__(self) -> None:
        self.hangups: list[tuple[float, str]] = []

    async def hangup(self, reason: str) -> None:
        self.hangups.append((asyncio.get_running_loop().time(), reason))

    async def transfer(self, to: str) -> None:
        raise AssertionError("no transfer expected")

    async def send_dtmf(self, digits: str) -> None:
        raise AssertionError("no DTMF expected")

    async def pause_recording(self) -> bool:
        return False

    async def resume_recording(self) -> bool:
        return False


async def _hangup_after(elapsed_s: float | None) -> tuple[float, str]:
    profile = resolve(AgentConfig(max_duration_s=60, first_message=""))
    actions = Actions()

    async def setup(start: Start) -> CallSetup:
        return CallSetup(profile=profile, actions=actions, reporter=NoReporter(),
                         **({} if elapsed_s is None else {"elapsed_s": elapsed_s}))

    agent = CallAgent(profile, stt=Stt(), llm=Llm(), tts=Tts(), setup=setup)
    began = await call_until(agent, lambda: actions.hangups, 1.0)
    at, reason = actions.hangups[0]
    return at - began, reason


@VIRTUAL
async def test_a_new_call_is_hung_up_at_its_max_duration():
    after, reason = await _hangup_after(None)
    assert after == pytest.approx(60.0, abs=0.01) and reason == "maximum call duration reached"


@VIRTUAL
async def test_a_call_picked_up_again_keeps_only_what_was_left_of_its_limit():
    # Fails before the fix: the re-attached agent started a whole new 60 s.
    after, reason = await _hangup_after(50.0)
    assert after == pytest.approx(10.0, abs=0.01) and reason == "maximum call duration reached"


@VIRTUAL
async def test_a_call_already_past_its_limit_is_ended_at_once():
    after, _ = await _hangup_after(75.0)
    assert after == pytest.approx(0.0, abs=0.01)
