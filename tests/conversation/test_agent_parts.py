"""The call agent's parts on their own: the policy's timers on the loop, the reply in flight,
what a reply's end leaves in the history and the records, the caller's keys."""

import asyncio
from types import SimpleNamespace

import pytest

from engine.conversation.call_control import CallControl
from engine.conversation.history import INTERRUPTED_NOTE, Conversation, SpokenText
from engine.conversation.loop_timers import LoopTimers
from engine.conversation.records import CallRecords
from engine.conversation.reply import CurrentReply
from engine.conversation.turn import Timer


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_a_timer_fires_once_at_its_latest_deadline_and_not_when_cancelled():
    loop = asyncio.get_running_loop()
    fired: list[tuple[Timer, float]] = []
    timers = LoopTimers(lambda timer: fired.append((timer, loop.time())))
    start = loop.time()
    timers.start(loop, Timer.HOLD, start + 0.5)
    timers.start(loop, Timer.HOLD, start + 0.7)  # started again: the new deadline replaces the old
    timers.start(loop, Timer.FINAL_WAIT, start + 0.3)
    timers.cancel(Timer.FINAL_WAIT)
    timers.start(loop, Timer.DTMF, start + 0.9)
    await asyncio.sleep(0.8)
    assert fired == [(Timer.HOLD, pytest.approx(start + 0.7))]
    timers.cancel_all()
    await asyncio.sleep(0.5)
    assert len(fired) == 1


def reply(uid: int, *, user_text: str = "Where is my order?", fixed_text: str | None = None,
          heard: str = "", speaking: bool = True) -> SimpleNamespace:
    spoken = SpokenText()
    if heard:
        spoken.add_text(heard)
        spoken.add_audio(1000.0)
    return SimpleNamespace(utterance_id=uid, user_text=user_text, fixed_text=fixed_text, spoken=spoken, text=heard,
                           timeline=None, speaking=speaking, cancelled=False,
                           cancel=lambda: None, heard_by=lambda now: spoken.heard(now * 1000))


def test_the_reply_in_flight_answers_only_to_its_own_utterance_id():
    current = CurrentReply()
    current.reply = first = reply(1)
    assert current.get(2) is None and current.take(2) is None and current.reply is first
    assert current.take(1) is first and current.reply is None
    current.reply = second = reply(3)
    assert current.take() is second and current.take() is None


class Reporter:
    def __init__(self) -> None:
        self.turns: list = []

    async def turn(self, call_control_id, record) -> None:
        self.turns.append(record)

    async def finished(self, report) -> None: ...


@pytest.mark.asyncio
async def test_a_reply_cut_off_keeps_what_was_heard_or_merges_into_the_caller_s_next_turn():
    reporter = Reporter()
    records = CallRecords(reporter, usage=lambda: {"llm_tokens": 7})
    conversation = Conversation("system")
    conversation.add_user("Where is my order?")
    heard = reply(1, heard="It ships today.")
    assert records.reply_cut_off(conversation, heard, 1000) is None
    assert conversation.messages[-1]["content"] == "It ships today." + INTERRUPTED_NOTE
    conversation.add_user("And the invoice?")
    unheard = reply(2, user_text="And the invoice?")
    # Cut off before a word: the caller's words go back to be answered with what they say next.
    assert records.reply_cut_off(conversation, unheard, 0) == "And the invoice?"
    assert conversation.messages[-1]["role"] == "assistant"
    await asyncio.sleep(0)
    assert [(t.agent_text, t.interrupted, t.usage) for t in reporter.turns] == [
        ("It ships today.", True, {"llm_tokens": 7})]


@pytest.mark.asyncio
async def test_a_fixed_line_is_history_only_when_it_is_the_greeting():
    reporter = Reporter()
    records = CallRecords(reporter)
    conversation = Conversation("system")
    records.reply_played(conversation, reply(1, user_text="", fixed_text="Hi, this is Ana.", heard="Hi, this is Ana."),
                         greeting="Hi, this is Ana.")
    records.reply_played(conversation, reply(2, user_text="", fixed_text="Sorry.", heard="Sorry."),
                         greeting="Hi, this is Ana.")
    records.reply_hung_up(conversation, reply(3, user_text="", fixed_text="One moment.", heard="One moment."), 1.0)
    await asyncio.sleep(0)
    assert [m["content"] for m in conversation.messages] == ["Hi, this is Ana."] and not reporter.turns


@pytest.mark.asyncio
async def test_keys_are_masked_in_pci_mode_and_the_pci_sequence_is_no_input():
    class Actions:
        async def pause_recording(self) -> bool:
            return True

        async def resume_recording(self) -> bool:
            return True

    control = CallControl(Actions(), [], asyncio.ensure_future)
    assert control.keys_entered("4111#", "*7") == "4111#"
    assert control.keys_entered("*7#", "*7") is None
    await asyncio.sleep(0)
    assert control.pci and control.keys_entered("4111#", "*7") == "••••#"
    assert control.keys_entered("*7", None) == "*•"  # no sequence configured: keys like any other
