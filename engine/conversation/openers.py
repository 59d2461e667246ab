"""Audio of the short pieces replies open with, kept to speak again without the TTS's wait.

A reply's first piece decides when the caller first hears the agent, and the TTS's time to
first audio (100-250 ms on hosted services) sits on that path after the model's first words.
Agents open most replies with a few short sentences ("Sure.", "Of course.", "Thanks for
calling.") or clauses ("Sure,"). One an agent has opened with :data:`REPEATS` times is
synthesized once, in the background, and the next reply that opens with the same words in the
same voice plays that audio at once; the rest of the reply goes to the TTS as before. Replies
flush each piece, and a TTS that speaks a flushed piece alone (``pieces_alone``) says it the
same either way (one that does not still ends a whole sentence there): the caller hears the same
speech, sooner.

Kept per owner (the call's organisation): which words another organisation's agents say, and
how often, is theirs, and a faster reply would tell it. Bounded: at most :data:`KEPT` pieces
per cache, of at most :data:`MAX_CHARS` characters, least recently used out first.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Awaitable, Callable

from .chunker import ENDS_CLAUSE, ENDS_SENTENCE
from .usage import CallUsage

log = logging.getLogger(__name__)

MAX_CHARS = 40
"""Longer pieces are sentences of their own, rarely said twice word for word."""
REPEATS = 2
"""Openings seen this often are synthesized for reuse: a piece said once costs no synthesis."""
KEPT = 256
COUNTED = 4096

Key = tuple[str, str, int, str]  # owner, voice, sample rate, text
Synthesize = Callable[[str, int, str, CallUsage | None], Awaitable[bytes | None]]


class OpenerCache:
    def __init__(self, synthesize: Synthesize, *, repeats: int = REPEATS, kept: int = KEPT) -> None:
        self._synthesize = synthesize
        self.repeats = repeats
        self.kept = kept
        self._audio: collections.OrderedDict[Key, bytes] = collections.OrderedDict()
        self._seen: collections.OrderedDict[Key, int] = collections.OrderedDict()
        self._pending: dict[Key, asyncio.Task[None]] = {}
        self.hits = 0
        self.misses = 0

    def opening(self, owner: str | None, voice: str, sample_rate: int, text: str,
                usage: CallUsage | None = None, *, clauses: bool = False) -> bytes | None:
        """The audio of ``text``, a reply's first piece, if this owner's agents with this voice have
        opened with it often enough; otherwise None, and the piece is counted (and synthesized in
        the background once it has been seen :attr:`repeats` times). A whole sentence, or with
        ``clauses`` (the TTS speaks flushed pieces alone) a clause too."""
        # A clause ("Sure,") only where the TTS speaks a flushed piece alone: one that waits for the
        # sentence's end would lead on from it into the next words.
        if len(text) > MAX_CHARS or not (ENDS_SENTENCE.search(text) or (clauses and ENDS_CLAUSE.search(text))):
            return None
        key = (owner or "", voice, sample_rate, text)
        audio = self._audio.get(key)
        if audio is not None:
            self._audio.move_to_end(key)
            self.hits += 1
            return audio
        self.misses += 1
        seen = self._seen.pop(key, 0) + 1
        self._seen[key] = seen
        if len(self._seen) > COUNTED:
            self._seen.popitem(last=False)
        if seen >= self.repeats and key not in self._pending:
            task = asyncio.ensure_future(self._keep(key, usage))
            self._pending[key] = task
            task.add_done_callback(functools.partial(self._settled, key))
        return None

    async def _keep(self, key: Key, usage: CallUsage | None) -> None:
        _, voice, sample_rate, text = key
        try:
            audio = await self._synthesize(voice, sample_rate, text, usage)
        except Exception:  # (a closing HTTP session...): counted afresh, as a refusal is
            log.exception("could not synthesize an opening for voice %s", voice)
            audio = None
        finally:
            self._seen.pop(key, None)  # kept, or (the TTS failing) counted afresh: no retry per reply
        if audio:
            self._audio[key] = audio
            while len(self._audio) > self.kept:
                self._audio.popitem(last=False)

    async def aclose(self) -> None:
        """Stop the syntheses still running: each would open a TTS stream on an HTTP session that
        is closing (one the TTS client made anew, never closed)."""
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _settled(self, key: Key, _task: asyncio.Task[None]) -> None:
        self._pending.pop(key, None)

    def __len__(self) -> int:
        return len(self._audio)
