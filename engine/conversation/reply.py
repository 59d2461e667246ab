"""One agent reply: model text -> speakable chunks -> TTS audio -> (held or) playout.

A :class:`Reply` is the IO half of a reply the turn policy started: it streams the LLM, runs
the model's tools, feeds the TTS and pumps its audio into the media session, holding it while
the reply is speculative. The agent that owns it (a :class:`ReplyHost`) decides everything
else: when it commits, when it is dropped, what its end means for the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

import aiohttp

from ..providers.base import AudioChunk, ChatModel, ProviderError, TextToSpeech, ToolCall, TtsStream
from ..session import MediaSession
from ..timeline import TurnTimeline
from .call_tools import CallTools
from .chunker import SpeechChunker
from .config import AgentProfile
from .history import SpokenText
from .knowledge import TurnKnowledge
from .phrases import PhraseCache
from .usage import CallUsage, estimate_prompt_tokens

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_TOOL_ROUNDS = 3


class ReplyHost(Protocol):
    """What a reply needs from its agent."""

    session: MediaSession
    llm: ChatModel
    tts: TextToSpeech
    sample_rate: int
    call_control_id: str | None
    usage: CallUsage
    profile: AgentProfile
    phrases: PhraseCache
    call_tools: CallTools

    # (Read-only: the agent derives them.)
    @property
    def tools(self) -> list[dict[str, Any]]: ...
    @property
    def knowledge(self) -> TurnKnowledge | None: ...
    @property
    def voice(self) -> str: ...
    @property
    def deadline_s(self) -> float: ...

    def spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]: ...
    def close_later(self, coro: Awaitable[Any]) -> None: ...
    def now(self) -> float: ...
    def messages_for(self, user_text: str) -> list[dict[str, Any]]: ...
    async def run_tools(self, reply: Reply, calls: list[ToolCall], messages: list[dict[str, Any]]) -> bool: ...
    def reply_speaking(self, reply: Reply) -> None: ...
    def reply_audio_ready(self, reply: Reply) -> None: ...
    def reply_failed(self, reply: Reply, exc: BaseException) -> None: ...


class Reply:
    def __init__(
        self, host: ReplyHost, utterance_id: int, *, user_text: str, committed: bool,
        fixed_text: str | None = None, attempt: int = 0,
    ) -> None:
        self.host = host
        self.utterance_id = utterance_id
        self.user_text = user_text
        self.committed = committed
        self.fixed_text = fixed_text
        self.attempt = attempt
        self.timeline: TurnTimeline | None = host.session.current_turn if fixed_text is None else None
        self.spoken = SpokenText()
        self.text_parts: list[str] = []
        self.held: list[bytes] = []
        self.audio_done = False
        self.speaking = False
        self.cancelled = False
        self.task: asyncio.Task[None] | None = None
        self._stream: TtsStream | None = None
        self._opening: asyncio.Task[TtsStream] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._tool_running = False
        self._released = False  # failed: the TTS stream is closed, not used
        self._waiting: asyncio.Timeout | None = None  # the pump's wait for the next audio
        self._first_audio = False
        self._tts_fed = False  # text went to the TTS, so its audio (and its end) will come
        self._commit_waiter: asyncio.Future[None] | None = None  # tool calls waiting for the commit

    @classmethod
    def recorded(cls, host: ReplyHost, utterance_id: int, text: str, pcm: bytes) -> Reply:
        """A fixed line from the phrase cache (the apology), played at once, whole."""
        reply = cls(host, utterance_id, user_text="", committed=True, fixed_text=text, attempt=-1)
        reply.speaking = True
        host.session.speak(utterance_id, pcm)
        host.session.finish_utterance(utterance_id)
        return reply

    # -- control ------------------------------------------------------------------------

    def start(self) -> None:
        self.task = self.host.spawn(self._run())

    def commit(self) -> None:
        """The turn is final: audio may play. Held audio goes out at once."""
        if self.committed:
            return
        self.committed = True
        waiter = self._commit_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self.cancelled:
            self._open_tts()
        for pcm in self.held:
            self._play(pcm)
        self.held.clear()
        if self.audio_done:
            self.host.session.finish_utterance(self.utterance_id)

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        for task in (self.task, self._pump, self._opening):
            if task is not None and not task.done():
                task.cancel()
        if self._stream is not None:
            self.host.close_later(self._stream.aclose())

    def insert(self, pcm: bytes, text: str) -> None:
        """A fixed line (the tool filler) spoken as part of this reply, where its audio is now."""
        if self.cancelled or not pcm:
            return
        self.spoken.add_inserted(len(pcm) * 500 / self.host.sample_rate, text)
        if self.committed:
            self._play(pcm)
        else:
            self.held.append(pcm)

    # -- work ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            self._open_tts()  # the handshake overlaps the LLM's time to first token
            if self.fixed_text is not None:
                stream = await self._tts()
                self.spoken.add_text(self.fixed_text)
                self.text_parts.append(self.fixed_text)
                self.host.usage.tts_characters += len(self.fixed_text)
                self._tts_fed = True
                await stream.send_text(self.fixed_text, flush=True)
            else:
                await self._generate()
            stream = await self._tts()
            if not self._tts_fed:
                self._no_audio_to_come()
                return
            await stream.end()
            if self._pump is not None:  # (set once the stream opened, which _tts() awaited)
                await self._pump
        except asyncio.CancelledError:
            raise
        except (ProviderError, TimeoutError, aiohttp.ClientError) as exc:
            self._release_tts()
            self.host.reply_failed(self, exc)
        except Exception:
            log.exception("reply failed on call %s", self.host.call_control_id)
            self._release_tts()
            self.host.reply_failed(self, ProviderError("agent", "internal error", retryable=False))

    def _no_audio_to_come(self) -> None:
        """Nothing went to the TTS (a kept opening was the whole reply, or the model only called
        tools): no audio will come. Its stream is closed (the pump's end closes it), not ended and
        waited on: a service may answer an input of no text with nothing at all."""
        if self._pump is not None:
            self._pump.cancel()
        self.audio_done = True
        if self.committed:
            self.host.session.finish_utterance(self.utterance_id)

    def _release_tts(self) -> None:
        """A failed reply speaks no more: its TTS stream, open or still opening, is closed. (The
        agent replaces a failed reply without cancelling it; a stream left open there was never
        closed: an "Unclosed connection" at garbage collection.)"""
        self._released = True
        if self._stream is not None:
            self.host.close_later(self._stream.aclose())

    def _open_tts(self) -> None:
        """Start the TTS handshake (once), with the LLM request: after the first token it would
        sit on the critical path. (Speculation starts only on text a turn can end with, so
        few of these connections are thrown away.)"""
        if self._opening is None:
            self._opening = self.host.spawn(self._connect_tts())

    async def _connect_tts(self) -> TtsStream:
        host = self.host
        # open() runs in this task (asyncio.timeout, not wait_for): cancelled, it closes what it
        # opened; returned, the stream is ours with no await in between. (wait_for runs it in a
        # task of its own, and on 3.11 drops a stream that task returns after the cancel.)
        async with asyncio.timeout(host.deadline_s):
            stream = await host.tts.open(voice=host.voice, sample_rate=host.sample_rate)
        self._stream = stream
        if self.cancelled or self._released:
            # (close_later: a close awaited here would be cut short by the call's end cancelling
            # this task, and the stream, marked closed, would never be closed again)
            host.close_later(stream.aclose())
            raise asyncio.CancelledError
        self._pump = host.spawn(self._pump_audio(stream))
        self._pump.add_done_callback(functools.partial(self._pump_ended, stream))
        return stream

    def _pump_ended(self, stream: TtsStream, pump: asyncio.Task[None]) -> None:
        """A pump cancelled before its first step ran none of its code, its close of the stream
        included (the call's end cancels a reply's tasks even where it did not cancel the reply:
        one a later reply replaced). The close is idempotent: once more costs nothing."""
        if pump.cancelled():
            self.host.close_later(stream.aclose())

    async def _tts(self) -> TtsStream:
        self._open_tts()
        opening = self._opening
        assert opening is not None  # _open_tts() set it
        return await opening

    async def _generate(self) -> None:
        host = self.host
        messages = host.messages_for(self.user_text)
        if host.knowledge is not None:  # the passages, usually fetched since the tentative end
            messages = await host.knowledge.augment(messages, self.user_text, self.timeline)
        tools = host.tools or None
        for _ in range(MAX_TOOL_ROUNDS):
            chunker = SpeechChunker()
            calls: list[ToolCall] = []
            self._stamp("llm_request")
            first = True
            reported = refused = False
            chunks = 0
            try:
                async for delta in stream_with_deadline(host.llm.stream(messages, tools=tools), host.deadline_s):
                    if delta.usage is not None:  # the stream's last chunk: no token of the answer
                        reported = True
                        host.usage.add_llm(delta.usage)
                        continue
                    if first:
                        self._stamp("llm_first_token")
                        first = False
                    if delta.text:
                        chunks += 1
                        for piece in chunker.feed(delta.text):
                            await self._say(piece)
                    calls.extend(delta.tool_calls)
            except (ProviderError, TimeoutError, aiohttp.ClientError):
                refused = first  # failed before any answer: nothing to bill
                raise
            finally:
                if not reported and not refused:  # cut off (or a server that does not report usage)
                    host.usage.add_llm_estimate(estimate_prompt_tokens(messages, tools), chunks,
                                                sum(len(c.arguments) for c in calls))
            for piece in chunker.flush():
                await self._say(piece)
            if not calls:
                return
            if not self.committed:
                # A tool acts on the world (an HTTP call, a hang-up, a transfer) and writes the
                # history: not on words the caller may still change. A dropped reply never runs it.
                # Its TTS, done with the words before the call, is silent meanwhile: no stall.
                self.tool_running(True)
                self._commit_waiter = asyncio.get_running_loop().create_future()
                await self._commit_waiter
            if not await host.run_tools(self, calls, messages):
                return

    async def _say(self, piece: str) -> None:
        # Connected before anything plays, a kept opening included: a refused handshake is a
        # failure the agent retries, not one after the caller heard the reply begin.
        stream = await self._tts()
        if not self.text_parts:
            audio = self._opening_audio(piece)
            if audio is not None:
                self._say_kept(piece, audio)
                return
            self._stamp("tts_request")  # this reply's, not a cancelled one's
        self.text_parts.append(piece)
        self.spoken.add_text(piece)
        self.host.usage.tts_characters += len(piece)
        self._tts_fed = True
        await stream.send_text(piece, flush=True)

    def _say_kept(self, piece: str, audio: bytes) -> None:
        self.text_parts.append(piece)
        self.spoken.add_inserted(len(audio) * 500 / self.host.sample_rate, piece)
        if self.timeline is not None:
            # The TTS was not asked: no provider time to first audio (a dropped reply of this
            # turn may have stamped a request of its own).
            self.timeline.tts_request = None
        self._audio_out(audio)

    def _opening_audio(self, piece: str) -> bytes | None:
        """The audio of an opening this agent has said before (:mod:`.openers`), if kept."""
        host = self.host
        if not host.profile.config.reuse_openers:
            return None
        context = host.call_tools.context
        return host.phrases.openers.opening(context.organisation_id if context is not None else None,
                                            host.voice, host.sample_rate, piece, host.usage,
                                            clauses=host.tts.pieces_alone)

    def tool_running(self, running: bool) -> None:
        """While the model's tools run, the TTS has nothing to say: its silence is no stall."""
        self._tool_running = running
        waiting = self._waiting
        if waiting is not None:
            waiting.reschedule(None if running else self.host.now() + self.host.deadline_s)

    async def _audio(self, stream: TtsStream) -> AsyncIterator[AudioChunk]:
        """The TTS's audio; each chunk must come within the provider deadline (tools aside)."""
        iterator = stream.__aiter__()
        deadline = self.host.deadline_s
        try:
            while True:
                try:
                    async with asyncio.timeout(None if self._tool_running else deadline) as self._waiting:
                        chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    return
                finally:
                    self._waiting = None
                yield chunk
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def _pump_audio(self, stream: TtsStream) -> None:
        host = self.host
        async for chunk in self._audio(stream):
            if not chunk.pcm:
                continue
            host.usage.tts_bytes += len(chunk.pcm)
            self.spoken.add_audio(len(chunk.pcm) * 500 / host.sample_rate, chunk.text)
            self._audio_out(chunk.pcm)
        self.audio_done = True
        if self.committed:
            host.session.finish_utterance(self.utterance_id)

    def _audio_out(self, pcm: bytes) -> None:
        """The reply's next audio: played once committed, held until then."""
        if not self._first_audio:
            self._first_audio = True
            self._stamp("tts_first_audio")
        if self.committed:
            self._play(pcm)
        else:
            self.held.append(pcm)
            if len(self.held) == 1:
                self.host.reply_audio_ready(self)

    def _play(self, pcm: bytes) -> None:
        if not self.speaking:
            self.speaking = True
            self.host.reply_speaking(self)
        self.host.session.speak(self.utterance_id, pcm)

    def _stamp(self, name: str) -> None:
        if self.timeline is not None:
            self.timeline.stamp(name, self.host.now(), overwrite=True)

    def heard_by(self, now: float) -> str:
        """The words of this reply the caller has heard by ``now`` (playout accounting)."""
        try:
            heard_ms = self.host.session.playout.heard_ms(self.utterance_id, now)
        except KeyError:
            heard_ms = 0
        return self.spoken.heard(heard_ms)

    @property
    def text(self) -> str:
        return " ".join(self.text_parts)



class CurrentReply:
    """The agent's reply in flight: at most one (a new one replaces it), matched by the
    utterance id the policy or the media session names, so that word of an earlier reply
    touches nothing."""

    __slots__ = ("reply",)

    def __init__(self) -> None:
        self.reply: Reply | None = None

    def get(self, utterance_id: int) -> Reply | None:
        reply = self.reply
        return reply if reply is not None and reply.utterance_id == utterance_id else None

    def take(self, utterance_id: int | None = None) -> Reply | None:
        """The reply in flight (if it is this one), no longer in flight."""
        reply = self.reply if utterance_id is None else self.get(utterance_id)
        if reply is not None:
            self.reply = None
        return reply

    def commit(self, utterance_id: int) -> None:
        """The speculative reply is the answer after all: its audio may go out."""
        reply = self.get(utterance_id)
        if reply is not None:
            if reply.timeline is not None:
                reply.timeline.speculative = True
            reply.commit()

    def drop(self, utterance_id: int | None = None) -> None:
        """Cancel the reply in flight (if it is this one)."""
        reply = self.take(utterance_id)
        if reply is not None:
            reply.cancel()

async def stream_with_deadline(iterator: AsyncIterator[T], deadline_s: float) -> AsyncIterator[T]:
    """Each item must arrive within the provider deadline, or the stream counts as stalled."""
    try:
        while True:
            try:
                async with asyncio.timeout(deadline_s):
                    item = await iterator.__anext__()
            except StopAsyncIteration:
                return
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
