"""The sans-IO pieces of the conversation layer."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.conversation.chunker import SpeechChunker
from engine.conversation.config import AgentConfig, AgentConfigError, load_personalities, resolve
from engine.conversation.dtmf import DtmfCollector, GatherConfig, describe_keys
from engine.conversation.history import INTERRUPTED_NOTE, Conversation, SpokenText
from engine.conversation.turn import same_words


def chunk_stream(tokens):
    chunker = SpeechChunker()
    out = []
    for token in tokens:
        out += chunker.feed(token)
    return out + chunker.flush()


def test_first_chunk_leaves_at_the_first_clause_later_ones_by_sentence():
    tokens = ["Sure", ",", " I", " can", " help", ",", " really", ".", " Your", " order", " ships", " today", "."]
    assert chunk_stream(tokens) == ["Sure,", "I can help, really.", "Your order ships today."]


def test_decimals_and_abbreviations_do_not_cut_sentences():
    tokens = ["It", " costs", " 3", ".", "5", " dollars", " with", " Dr", ".", " Smith", ".", " Bye", "!"]
    assert chunk_stream(tokens) == ["It costs 3.5 dollars with Dr. Smith.", "Bye!"]


def test_markdown_is_stripped_and_long_text_is_cut_at_a_space():
    chunker = SpeechChunker(max_chunk_chars=20)
    pieces = chunker.feed("**Hello** there my good friend how are you doing today") + chunker.flush()
    assert all(len(p) <= 20 for p in pieces) and "*" not in "".join(pieces)
    assert " ".join(pieces) == "Hello there my good friend how are you doing today"


@given(st.lists(st.text(alphabet="abc ,.!?", max_size=8), max_size=30))
def test_chunking_never_loses_or_reorders_text(tokens):
    pieces = chunk_stream(tokens)
    assert all(p == p.strip() and p for p in pieces)
    assert "".join("".join(pieces).split()) == "".join("".join(tokens).split())


def test_heard_text_uses_alignment_then_proportion():
    spoken = SpokenText()
    spoken.add_audio(1000, "Hello there.")       # 0..1000 ms
    spoken.add_audio(500, "How are you doing today?")  # 1000..2000 ms, in two chunks
    spoken.add_audio(500)
    assert spoken.heard(0) == ""
    assert spoken.heard(999) == "Hello"          # 1 of 2 words by proportion
    assert spoken.heard(1000) == "Hello there."
    assert spoken.heard(1500) == "Hello there. How are"  # half of 5 words
    assert spoken.heard(5000) == "Hello there. How are you doing today?"


def test_text_sent_while_the_previous_sentence_still_streams_is_counted_once():
    # The LLM's next sentence goes to TTS while the audio of the one before is still arriving:
    # that audio is the earlier sentence's, and the next one starts where its alignment says.
    spoken = SpokenText()
    spoken.add_text("Sure.")
    spoken.add_text("You said hi.")
    spoken.add_audio(200, "Sure.")
    spoken.add_audio(200, "You said hi.")
    spoken.add_text("I can help with that.")
    spoken.add_audio(300)  # still "You said hi."
    spoken.add_audio(500, "I can help with that.")
    assert spoken.text == "Sure. You said hi. I can help with that."
    assert spoken.heard(700) == "Sure. You said hi."


def test_heard_text_without_alignment_attributes_queued_text():
    spoken = SpokenText()
    spoken.add_text("One two three four.")
    spoken.add_audio(400)
    spoken.add_audio(400)
    assert spoken.heard(400) == "One two"


def test_interrupted_reply_is_marked_in_history():
    conversation = Conversation("be brief", max_turns=2)
    conversation.add_user("hi")
    conversation.add_assistant("Hello there", interrupted=True)
    messages = conversation.for_model()
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[2] == {"role": "assistant", "content": "Hello there" + INTERRUPTED_NOTE}
    assert conversation.transcript()[1]["interrupted"] is True
    for i in range(3):
        conversation.add_user(f"u{i}")
    assert [m["content"] for m in conversation.messages if m["role"] == "user"] == ["u1", "u2"]


def test_dtmf_terminator_count_and_pause():
    collector = DtmfCollector(GatherConfig(inter_digit_timeout_s=1.0, max_digits=3))
    assert collector.press("4", 0.0) is None and collector.press("2", 0.5) is None
    assert collector.deadline == 1.5 and collector.expire(1.4) is None
    assert collector.expire(1.5) == "42"
    assert collector.press("1", 2.0) is None and collector.press("#", 2.1) == "1#"
    assert [collector.press(d, 3.0) for d in "123"] == [None, None, "123"]
    assert describe_keys("4#") == "The caller pressed 4 # on the keypad."


def test_personalities_and_overrides(tmp_path: Path):
    profile = resolve(AgentConfig(personality="sales", voice="Telnyx.Natural.brook", variables={"name": "Ann"}))
    assert profile.voice == "Telnyx.Natural.brook" and "sales" in profile.system_prompt
    assert profile.system_prompt.endswith("name: Ann.")
    with pytest.raises(AgentConfigError, match="unknown personality"):
        resolve(AgentConfig(personality="pirate"))
    with pytest.raises(AgentConfigError, match="unknown built-in tools"):
        resolve(AgentConfig(tools=("launch_rockets",)))
    custom = tmp_path / "p.toml"
    custom.write_text('[personalities.pirate]\nsystem_prompt = "Arr."\nvoice = "Telnyx.KokoroTTS.am_adam"\n')
    table = load_personalities(custom)
    assert resolve(AgentConfig(personality="pirate"), table).voice == "Telnyx.KokoroTTS.am_adam"
    custom.write_text("[personalities.bad]\nvoice = 3\n")
    with pytest.raises(AgentConfigError, match="bad"):
        load_personalities(custom)


def test_same_words_ignores_case_and_punctuation_only():
    assert same_words("Hello, World!", "hello world")
    assert not same_words("I want to cancel", "I want to cancel not")


def test_word_count_ignores_bracketed_non_speech_tags():
    from engine.conversation.turn import word_count

    assert word_count("(unrecognised speech, 0.4 s) Hello there. (unrecognised speech, 1.2 s)") == 2
    assert word_count("(unrecognised speech, 0.4 s)") == 0


async def test_pci_mode_pauses_recording_and_masks_keys():
    import asyncio

    from engine.conversation.agent import CallAgent
    from engine.conversation.config import AgentConfig, resolve
    from engine.providers.base import ToolCall
    from engine.session import MediaSession

    class Actions:
        def __init__(self):
            self.calls = []

        async def pause_recording(self):
            self.calls.append("pause")
            return True

        async def resume_recording(self):
            self.calls.append("resume")
            return True

    profile = resolve(AgentConfig(tools=("pause_recording", "resume_recording"), pci_dtmf_sequence="*7"))
    agent = CallAgent(profile, stt=None, llm=None, tts=None, actions=Actions())
    agent.session, agent._loop = MediaSession(), asyncio.get_running_loop()
    assert {t["function"]["name"] for t in agent.tools} == {"pause_recording", "resume_recording"}
    messages = []
    assert await agent.call_tools.run([ToolCall("c1", "pause_recording", "{}")], messages, agent.conversation,
                                      agent.control, agent.profile.config, agent.call_control_id) is True
    assert agent.pci and agent.actions.calls == ["pause"]
    assert messages[-1]["content"] == "recording paused"
    agent._keys_entered("4111#")
    assert "4111" not in " ".join(agent.policy.finals) and "• • • • #" in agent.policy.finals[-1]
    agent._keys_entered("*7")  # the PCI key sequence toggles it off
    await asyncio.sleep(0)
    assert not agent.pci and agent.actions.calls == ["pause", "resume"]
    for task in list(agent._tasks):
        task.cancel()


@pytest.mark.asyncio(loop_factories=["virtual"])
async def test_finish_reports_waits_for_reports_still_being_written():
    import asyncio

    from engine.conversation import agent

    written = []

    async def report():
        await asyncio.sleep(0.05)  # (virtual time) a write still in flight when the call is stopped
        written.append("summary")

    task = asyncio.ensure_future(report())
    agent._background.add(task)
    task.add_done_callback(agent._background.discard)
    await agent.finish_reports(timeout_s=5)
    assert written == ["summary"] and not agent._background
    await agent.finish_reports(timeout_s=5)  # nothing pending: returns at once

