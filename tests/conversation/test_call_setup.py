"""A stream waits for its call's setup (the control plane's records), in virtual time: the call's
own agent answers when the records are slow, the default agent only when they fail or stay
silent past ``setup_timeout_s``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from engine.conversation.agent import SETUP_TIMEOUT_S, CallAgent
from engine.conversation.config import AgentConfig, resolve
from engine.conversation.phrases import PhraseCache
from engine.conversation.ports import CallSetup, NoActions, NoReporter
from engine.endpointing import EndpointEvent
from engine.protocol import Start
from engine.providers.base import TtsStream

from .test_turn_hold import Llm, Stt, Tts, TtsStreamFake, call_until

VIRTUAL = pytest.mark.asyncio(loop_factories=["virtual"])
DEFAULT = resolve(AgentConfig(first_message="This is the default agent."))
OWN = resolve(AgentConfig(first_message="Hi, this is Acme about your order."))


class SaidTts(Tts):
    """Records each text the agent has spoken, and when."""

    def __init__(self) -> None:
        self.said: list[tuple[float, str]] = []

    async def open(self, *, voice: str, sample_rate: int) -> TtsStream:
        tts, stream = self, TtsStreamFake()
        send = stream.send_text

        async def send_text(text: str, *, flush: bool = False) -> None:
            tts.said.append((asyncio.get_running_loop().time(), text))
            await send(text, flush=flush)

        stream.send_text = send_text  # type: ignore[method-assign]
        return stream


Setup = Callable[[Start], Awaitable[CallSetup]]


def records_that(take_s: float, *, fail: bool = False) -> Setup:
    async def setup(start: Start) -> CallSetup:
        await asyncio.sleep(take_s)
        if fail:
            raise ConnectionError("records unreachable")
        return CallSetup(profile=OWN, actions=NoActions(), reporter=NoReporter())
    return setup


async def greeting_with(setup: Setup, **kwargs: float) -> tuple[float, str, list[str]]:
    """When the call's first words went out, what they were, and the call's errors."""
    tts = SaidTts()
    agent = CallAgent(DEFAULT, stt=Stt(), llm=Llm(), tts=tts, setup=setup,  # type: ignore[arg-type]
                      phrases=PhraseCache(Tts()), **kwargs)  # (the cached filler lines: not the call's words)
    began = await call_until(agent, lambda: tts.said, 0.05)
    at, text = tts.said[0]
    return at - began, text, agent.errors


@VIRTUAL
async def test_records_slower_than_a_providers_deadline_still_give_the_calls_own_agent():
    # Under load the records took 3 s: past the 2 s a stalled provider gets, and before this
    # fix the default agent greeted a customer's caller (and no turn of the call was recorded).
    assert DEFAULT.config.provider_deadline_s < 3.0 < SETUP_TIMEOUT_S
    after, said, errors = await greeting_with(records_that(3.0))
    assert said == "Hi, this is Acme about your order." and errors == []
    assert after == pytest.approx(3.0, abs=0.1)


@VIRTUAL
async def test_records_silent_past_the_setup_timeout_get_the_default_agent():
    after, said, errors = await greeting_with(records_that(60.0), setup_timeout_s=4.0)
    assert said == "This is the default agent."
    assert after == pytest.approx(4.0, abs=0.1) and errors == ["setup: not ready in 4 s"]


@VIRTUAL
async def test_records_that_fail_get_the_default_agent_at_once():
    after, said, errors = await greeting_with(records_that(0.2, fail=True))
    assert said == "This is the default agent." and errors == ["setup: records unreachable"]
    assert after == pytest.approx(0.2, abs=0.1)


@VIRTUAL
async def test_a_caller_who_speaks_while_the_setup_is_pending_gets_no_guess_and_still_the_greeting():
    # The opening guess answers for the call's own agent: while its setup is pending the agent (its
    # prompt, its greeting) is not known. A "Hello?" then must not start the default agent's reply
    # nor cost the call its own greeting.
    tts, llm = SaidTts(), Llm()
    agent = CallAgent(resolve(AgentConfig()), stt=Stt(), llm=llm, tts=tts, setup=records_that(1.0),
                      phrases=PhraseCache(Tts()))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()

    async def caller_says_hello() -> None:
        await asyncio.sleep(0.3)
        agent.on_endpoint(EndpointEvent.SPEECH_START, loop.time())

    speaking = asyncio.ensure_future(caller_says_hello())
    began = await call_until(agent, lambda: tts.said, 0.05)
    await speaking
    assert llm.requests == []  # no guess, for the default agent or any
    assert tts.said[0][1] == "Hi, this is Acme about your order."
    assert tts.said[0][0] - began == pytest.approx(1.0, abs=0.1)
