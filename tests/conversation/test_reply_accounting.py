"""What a reply accounts for (issue 18). LLM usage of replies cut off before the stream's usage
chunk: OpenAI sends a stream's usage only in its last chunk and says an interrupted stream may
never get it, so such a request is *estimated* (prompt from the request's characters, completion
one token per content chunk received) and kept apart from the reported figures; a request that
failed before any answer counts nothing. And a failed reply closes its TTS stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import pytest

from engine.conversation.call_tools import CallTools
from engine.conversation.config import AgentConfig, resolve
from engine.conversation.phrases import PhraseCache
from engine.conversation.reply import Reply
from engine.conversation.usage import CallUsage, estimate_prompt_tokens
from engine.providers.base import (
    AudioChunk,
    ChatDelta,
    ChatModel,
    ProviderError,
    TextToSpeech,
    TokenUsage,
    ToolCall,
    TtsStream,
)

T = TypeVar("T")
MESSAGES = [{"role": "system", "content": "You are a helpful agent on the phone." * 4},
            {"role": "user", "content": "Where is my order, please?"}]


class Llm(ChatModel):
    """Streams ``chunks`` content deltas, then (``usage``) the usage chunk or (``hang``) nothing more."""

    def __init__(self, chunks: int, *, usage: bool = False, hang: bool = False, fail: bool = False) -> None:
        self.chunks, self.usage, self.hang, self.fail = chunks, usage, hang, fail
        self.sent = asyncio.Event()

    async def stream(self, messages: list[dict[str, Any]], *, tools: Any = None) -> AsyncIterator[ChatDelta]:
        if self.fail:
            raise ProviderError("llm", "HTTP 500")
        for _ in range(self.chunks):
            yield ChatDelta("word ")
        self.sent.set()
        if self.hang:
            await asyncio.Event().wait()
        yield ChatDelta(finish_reason="stop")
        if self.usage:
            yield ChatDelta(usage=TokenUsage(120, self.chunks))

    async def complete_json(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
        return {}


class Stream(TtsStream):
    sample_rate = 8000

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.closed = False

    async def send_text(self, text: str, *, flush: bool = False) -> None:
        pass

    async def end(self) -> None:
        self.done.set()

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:  # type: ignore[override]
        await self.done.wait()
        return
        yield  # (an async generator)

    async def aclose(self) -> None:
        self.closed = True
        self.done.set()


class Tts(TextToSpeech):
    def __init__(self) -> None:
        self.streams: list[Stream] = []

    async def open(self, *, voice: str, sample_rate: int) -> TtsStream:
        self.streams.append(Stream())
        return self.streams[-1]


class Session:
    current_turn = None

    def speak(self, utterance_id: int, pcm: bytes) -> None:
        pass

    def finish_utterance(self, utterance_id: int) -> None:
        pass


class Host:
    sample_rate = 8000
    call_control_id = "v3:test"
    knowledge = None
    voice = "v"
    deadline_s = 5.0

    def __init__(self, llm: ChatModel) -> None:
        self.session = Session()
        self.llm = llm
        self.tts = Tts()
        self.phrases = PhraseCache(self.tts)
        self.profile = resolve(AgentConfig())
        self.call_tools = CallTools(self.profile, None)
        self.tools: list[dict[str, Any]] = []
        self.usage = CallUsage()
        self.failed: list[BaseException] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    def close_later(self, coro: Awaitable[Any]) -> None:
        self.spawn(coro)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def messages_for(self, user_text: str) -> list[dict[str, Any]]:
        return list(MESSAGES)

    async def run_tools(self, reply: Reply, calls: list[ToolCall], messages: list[dict[str, Any]]) -> bool:
        return False

    def reply_speaking(self, reply: Reply) -> None:
        pass

    def reply_audio_ready(self, reply: Reply) -> None:
        pass

    def reply_failed(self, reply: Reply, exc: BaseException) -> None:
        self.failed.append(exc)


async def _run(llm: Llm, *, cut: bool, settle: bool = False) -> Host:
    host = Host(llm)
    reply = Reply(host, 1, user_text="Where is my order, please?", committed=True)  # type: ignore[arg-type]
    reply.start()
    assert reply.task is not None
    if cut:
        await llm.sent.wait()
        reply.cancel()
    await asyncio.gather(reply.task, return_exceptions=True)
    if settle:  # let what the reply spawned finish
        await asyncio.gather(*host.tasks, return_exceptions=True)
    for task in host.tasks:
        task.cancel()
    await asyncio.gather(*host.tasks, return_exceptions=True)
    return host


async def test_a_reply_cut_off_before_its_usage_chunk_is_estimated_apart_from_reported_usage():
    host = await _run(Llm(7, hang=True), cut=True)
    usage = host.usage
    assert (usage.llm_requests, usage.llm_prompt_tokens, usage.llm_completion_tokens) == (0, 0, 0)
    assert usage.llm_estimated_requests == 1
    assert usage.llm_estimated_completion_tokens == 7  # one token a content chunk received
    assert usage.llm_estimated_prompt_tokens == estimate_prompt_tokens(MESSAGES) > 50
    report = usage.as_dict()
    assert report["llm_estimated_prompt_tokens"] == usage.llm_estimated_prompt_tokens
    assert report["llm_prompt_tokens"] == 0


async def test_a_reply_whose_server_reports_usage_is_not_estimated():
    host = await _run(Llm(5, usage=True), cut=False)
    usage = host.usage
    assert (usage.llm_requests, usage.llm_prompt_tokens, usage.llm_completion_tokens) == (1, 120, 5)
    assert (usage.llm_estimated_requests, usage.llm_estimated_prompt_tokens) == (0, 0)


async def test_a_finished_stream_from_a_server_that_never_reports_usage_is_estimated():
    host = await _run(Llm(4, usage=False), cut=False)
    assert host.usage.llm_estimated_requests == 1 and host.usage.llm_estimated_completion_tokens == 4


async def test_a_request_refused_before_any_answer_counts_nothing():
    host = await _run(Llm(3, fail=True), cut=False)
    assert host.failed and host.usage.llm_estimated_requests == 0 and host.usage.llm_requests == 0


@pytest.mark.parametrize(("messages", "at_least"), [
    ([{"role": "user", "content": "x" * 400}], 104),
    ([{"role": "user", "content": [{"type": "text", "text": "y" * 40}]}], 14),
    ([{"role": "assistant", "content": None,
       "tool_calls": [{"id": "1", "type": "function", "function": {"name": "lookup", "arguments": "{\"a\": 1}"}}]}],
     4 + 4),
])
def test_prompt_estimate_counts_every_kind_of_content(messages, at_least):
    assert estimate_prompt_tokens(messages) == at_least


async def test_a_failed_reply_closes_its_tts_stream():
    """The agent replaces a failed reply (its retry) without cancelling it: the reply closes its
    own TTS stream, else the socket is only found unclosed when it is garbage collected."""
    host = await _run(Llm(3, fail=True), cut=False, settle=True)
    assert host.failed
    assert host.tts.streams and all(stream.closed for stream in host.tts.streams)


async def test_a_call_ending_mid_reply_closes_the_replys_tts_stream():
    """At a call's end its reply is cancelled and the call's tasks after it: the TTS stream's
    close must not be one of the tasks cancelled (it never ran: "Unclosed connection")."""
    from engine.conversation.tasks import CallTasks
    from tests.fixtures.waiting import eventually

    llm = Llm(3, hang=True)
    host = Host(llm)
    tasks = CallTasks()
    host.spawn = tasks.spawn  # type: ignore[method-assign]
    host.close_later = tasks.close_later  # type: ignore[method-assign]
    reply = Reply(host, 1, user_text="Where is my order, please?", committed=True)  # type: ignore[arg-type]
    reply.start()
    await llm.sent.wait()
    await eventually(lambda: reply._stream is not None, what="the TTS stream open")
    reply.cancel()  # as CallAgent._finish does, then:
    await tasks.cancel_all()
    assert all(stream.closed for stream in host.tts.streams)
