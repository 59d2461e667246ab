"""Openings kept for reuse (engine/conversation/openers.py): a reply that opens with words its
agent has opened with before plays their audio at once, without the TTS's wait, and the rest of
the reply goes to the TTS as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest

from engine.conversation.call_tools import CallTools
from engine.conversation.config import AgentConfig, resolve
from engine.conversation.context import ToolContext
from engine.conversation.openers import MAX_CHARS, OpenerCache
from engine.conversation.phrases import PhraseCache
from engine.conversation.reply import Reply
from engine.conversation.usage import CallUsage
from engine.providers.base import AudioChunk, ChatDelta, ChatModel, ProviderError, TextToSpeech, TtsStream
from engine.timeline import TurnTimeline
from tests.conversation import test_reply_accounting as accounting

T = TypeVar("T")


class Synthesis:
    """Each text spoken as its own bytes; ``fail`` refuses."""

    def __init__(self, *, fail: bool = False) -> None:
        self.asked: list[str] = []
        self.fail = fail

    async def __call__(self, voice: str, rate: int, text: str, usage: CallUsage | None) -> bytes | None:
        self.asked.append(text)
        await asyncio.sleep(0)
        return None if self.fail else f"<{voice}:{text}>".encode()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_opening_said_twice_is_synthesized_once_and_then_played_from_memory():
    synth = Synthesis()
    cache = OpenerCache(synth)
    assert cache.opening("org-a", "v", 8000, "Sure.") is None
    await settle()
    assert synth.asked == []  # said once: nothing spent on it
    assert cache.opening("org-a", "v", 8000, "Sure.") is None
    await settle()
    assert synth.asked == ["Sure."]
    assert cache.opening("org-a", "v", 8000, "Sure.") == b"<v:Sure.>"
    assert cache.opening("org-a", "v", 8000, "Sure.") == b"<v:Sure.>"
    await settle()
    assert synth.asked == ["Sure."] and cache.hits == 2


async def test_openings_are_kept_per_organisation_voice_and_rate():
    synth = Synthesis()
    cache = OpenerCache(synth, repeats=1)
    cache.opening("org-a", "v", 8000, "Sure.")
    await settle()
    assert cache.opening("org-a", "v", 8000, "Sure.") is not None
    assert cache.opening("org-b", "v", 8000, "Sure.") is None  # another organisation's words
    assert cache.opening("org-a", "w", 8000, "Sure.") is None  # another voice
    assert cache.opening("org-a", "v", 16000, "Sure.") is None  # another rate
    assert cache.opening("org-a", "v", 8000, "Sure!") is None  # other punctuation speaks otherwise
    await settle()
    assert synth.asked == ["Sure.", "Sure.", "Sure.", "Sure.", "Sure!"]  # each kept apart


async def test_long_pieces_are_never_counted_or_synthesized():
    synth = Synthesis()
    cache = OpenerCache(synth, repeats=1)
    sentence = "Your order shipped on Tuesday and arrives soon."
    assert len(sentence) > MAX_CHARS
    for _ in range(3):
        assert cache.opening(None, "v", 8000, sentence) is None
    await settle()
    assert synth.asked == []


async def test_a_failing_tts_is_not_asked_again_on_every_reply():
    synth = Synthesis(fail=True)
    cache = OpenerCache(synth)
    for _ in range(2):
        cache.opening(None, "v", 8000, "Sure.")
    await settle()
    assert synth.asked == ["Sure."]
    cache.opening(None, "v", 8000, "Sure.")  # counted afresh: one sighting
    await settle()
    assert synth.asked == ["Sure."] and len(cache) == 0
    cache.opening(None, "v", 8000, "Sure.")
    await settle()
    assert synth.asked == ["Sure.", "Sure."]


async def test_the_least_recently_used_opening_goes_first():
    cache = OpenerCache(Synthesis(), repeats=1, kept=2)
    for text in ("Sure.", "Okay."):
        cache.opening(None, "v", 8000, text)
        await settle()
    assert cache.opening(None, "v", 8000, "Sure.") is not None  # used: "Okay." is now the oldest
    cache.opening(None, "v", 8000, "Got it.")
    await settle()
    assert len(cache) == 2
    assert cache.opening(None, "v", 8000, "Sure.") is not None
    assert cache.opening(None, "v", 8000, "Got it.") is not None
    assert cache.opening(None, "v", 8000, "Okay.") is None


# -- a reply that opens with kept words --------------------------------------------------------


class Llm(ChatModel):
    def __init__(self, tokens: tuple[str, ...] = ("Sure.", " Your order", " is on its way.")) -> None:
        self.tokens = tokens

    async def stream(self, messages: list[dict[str, Any]], *, tools: Any = None) -> AsyncIterator[ChatDelta]:
        for token in self.tokens:
            yield ChatDelta(token)
        yield ChatDelta(finish_reason="stop")

    async def complete_json(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
        return {}


class Stream(TtsStream):
    sample_rate = 8000

    def __init__(self, sent: list[str]) -> None:
        self.sent = sent
        self.pending: asyncio.Queue[str | None] = asyncio.Queue()
        self.ended = self.closed = False

    async def send_text(self, text: str, *, flush: bool = False) -> None:
        self.sent.append(text)
        self.pending.put_nowait(text)

    async def end(self) -> None:
        self.ended = True
        self.pending.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:  # type: ignore[override]
        while (text := await self.pending.get()) is not None:
            yield AudioChunk(f"[{text}]".encode(), text)

    async def aclose(self) -> None:
        self.closed = True
        self.pending.put_nowait(None)


class Tts(TextToSpeech):
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.streams: list[Stream] = []
        self.refuse = False

    async def open(self, *, voice: str, sample_rate: int) -> TtsStream:
        if self.refuse:
            raise ProviderError("tts", "handshake refused")
        self.streams.append(Stream(self.sent))
        return self.streams[-1]


class Session:
    def __init__(self) -> None:
        self.spoken: list[bytes] = []
        self.finished: list[int] = []
        self.current_turn = TurnTimeline(1)

    def speak(self, utterance_id: int, pcm: bytes) -> None:
        self.spoken.append(pcm)

    def finish_utterance(self, utterance_id: int) -> None:
        self.finished.append(utterance_id)


class Host(accounting.Host):
    """The reply's agent, as in the accounting tests, with a cache and the call's organisation."""

    def __init__(self, phrases: PhraseCache, tts: Tts, *, reuse: bool = True) -> None:
        super().__init__(Llm())
        self.session = Session()  # type: ignore[assignment]
        self.tts = tts  # type: ignore[assignment]
        self.phrases = phrases
        self.profile = resolve(AgentConfig(reuse_openers=reuse))
        self.call_tools = CallTools(self.profile, None)
        self.call_tools.context = ToolContext(organisation_id="org-a")


async def _reply(host: Host) -> Reply:
    reply = Reply(host, 1, user_text="Where is my order?", committed=True)  # type: ignore[arg-type]
    reply.start()
    assert reply.task is not None
    await reply.task
    await asyncio.gather(*host.tasks, return_exceptions=True)
    assert not host.failed
    return reply


async def _kept(tts: Tts, *texts: str) -> PhraseCache:
    """A cache that keeps ``texts`` (org-a, voice v, 8 kHz), as the TTS says them."""
    phrases = PhraseCache(tts)
    phrases.openers.repeats = 1
    for text in texts:
        assert phrases.openers.opening("org-a", "v", 8000, text, clauses=True) is None
    await settle()
    await asyncio.gather(*list(phrases.openers._pending.values()))
    for text in texts:
        assert phrases.openers.opening("org-a", "v", 8000, text, clauses=True) == f"[{text}]".encode()
    tts.sent.clear()
    tts.streams.clear()
    return phrases


@pytest.mark.parametrize("reuse", [True, False])
async def test_a_reply_opening_with_kept_words_plays_them_at_once_and_sends_only_the_rest(reuse):
    tts = Tts()
    phrases = await _kept(tts, "Sure.")  # what the TTS said for it, on a stream of its own
    host = Host(phrases, tts, reuse=reuse)
    reply = await _reply(host)

    assert reply.text == "Sure. Your order is on its way."
    if reuse:
        assert tts.sent == ["Your order is on its way."]
        assert host.session.spoken == [b"[Sure.]", b"[Your order is on its way.]"]
        assert host.usage.tts_characters == len("Your order is on its way.")
    else:
        assert tts.sent == ["Sure.", "Your order is on its way."]
        assert host.usage.tts_characters == len("Sure.Your order is on its way.")
    assert reply.spoken.text == "Sure. Your order is on its way."  # what the caller hears, aligned
    turn = host.session.current_turn
    assert turn.tts_first_audio is not None
    # The TTS was not asked for the opening: no provider time to first audio is measured for it.
    assert (turn.tts_request is None) is reuse
    assert ("tts_first_audio" in turn.stages_ms()) is not reuse


async def test_a_speculative_reply_holds_kept_words_until_its_turn_commits():
    tts = Tts()
    host = Host(await _kept(tts, "Sure."), tts)
    ready: list[Reply] = []
    host.reply_audio_ready = ready.append  # type: ignore[method-assign]
    reply = Reply(host, 1, user_text="Where is my order?", committed=False)  # type: ignore[arg-type]
    reply.start()
    assert reply.task is not None
    await reply.task
    assert host.session.spoken == [] and ready == [reply]
    reply.commit()
    assert host.session.spoken == [b"[Sure.]", b"[Your order is on its way.]"]
    assert tts.sent == ["Your order is on its way."] and host.session.finished == [1]


async def test_a_reply_that_is_only_a_kept_opening_finishes_without_waiting_on_the_tts():
    """No text went to the TTS stream: it is closed, not ended and waited on (a service may
    answer an input of no text with nothing), and the utterance finishes."""
    tts = Tts()
    host = Host(await _kept(tts, "Thanks for calling."), tts)
    host.llm = Llm(("Thanks for calling.",))
    reply = await _reply(host)
    assert host.session.spoken == [b"[Thanks for calling.]"] and host.session.finished == [1]
    assert reply.audio_done and tts.sent == []
    [stream] = tts.streams
    assert stream.closed and not stream.ended


async def test_a_refused_tts_fails_the_reply_before_its_kept_opening_plays():
    """The agent retries a reply that failed before the caller heard any of it; one that had begun
    to speak ends the call. So the kept opening waits for the TTS to be connected."""
    tts = Tts()
    host = Host(await _kept(tts, "Sure."), tts)
    tts.refuse = True
    reply = Reply(host, 1, user_text="Where is my order?", committed=True)  # type: ignore[arg-type]
    reply.start()
    assert reply.task is not None
    await reply.task
    assert [type(e) for e in host.failed] == [ProviderError] and host.session.spoken == []


@pytest.mark.parametrize("alone", [True, False])
async def test_a_clause_is_kept_only_where_the_tts_speaks_a_flushed_piece_alone(alone):
    """Where the TTS waits for the sentence's end (no flush), "Sure," leads on into the next words,
    which a recording of it alone would not: kept, it would sound cut off."""
    synth = Synthesis()
    cache = OpenerCache(synth, repeats=1)
    assert cache.opening(None, "v", 8000, "Sure,", clauses=alone) is None
    await settle()
    assert synth.asked == (["Sure,"] if alone else [])
    assert (cache.opening(None, "v", 8000, "Sure,", clauses=alone) is not None) is alone


async def test_a_reply_asks_for_clauses_as_its_tts_flushes():
    from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig

    assert Tts().pieces_alone  # (engines that take whole sentences render a flushed piece alone)
    assert TelnyxTextToSpeech(TelnyxTtsConfig(api_key="k")).pieces_alone
    assert not TelnyxTextToSpeech(TelnyxTtsConfig(api_key="k", send_flush=False)).pieces_alone
    tts = Tts()
    host = Host(await _kept(tts, "Sure,"), tts)
    host.llm = Llm(("Sure,", " your order", " is on its way."))
    await _reply(host)
    assert tts.sent == ["your order is on its way."]
    assert host.session.spoken[0] == b"[Sure,]"


async def test_a_synthesis_that_raises_is_counted_afresh():
    async def broken(voice: str, rate: int, text: str, usage: CallUsage | None) -> bytes | None:
        raise RuntimeError("Session is closed")

    cache = OpenerCache(broken)
    for _ in range(2):
        cache.opening(None, "v", 8000, "Sure.")
    await settle()
    assert not cache._pending and not cache._seen and len(cache) == 0


async def test_closing_stops_the_syntheses_still_running():
    """A server shutting down closes the cache before the TTS's HTTP session: a synthesis left
    running would open a stream on a closed session (the client would make one anew, never
    closed)."""
    started, released = asyncio.Event(), asyncio.Event()
    asked: list[str] = []

    async def slow(voice: str, rate: int, text: str, usage: CallUsage | None) -> bytes | None:
        asked.append(text)
        started.set()
        await released.wait()
        return b"audio"

    phrases = PhraseCache(Tts())
    phrases.openers = OpenerCache(slow)
    for _ in range(2):
        phrases.openers.opening(None, "v", 8000, "Sure.")
    await started.wait()
    await phrases.aclose()
    released.set()
    await settle()
    assert asked == ["Sure."] and len(phrases.openers) == 0 and not phrases.openers._pending
