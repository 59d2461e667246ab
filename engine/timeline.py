"""Per-turn latency accounting: monotonic stamps in, stage durations out.

One :class:`TurnTimeline` per caller turn. The media session stamps what it sees
(speech start/end, end-of-turn, first agent frame); the conversation pipeline
stamps provider steps (STT final, LLM request and first token, TTS request and
first audio), and the turn policy's account of how the turn ended (``outcome``). Nothing here
reads a clock: stamps are given.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

from .turn_outcome import TurnOutcome

STAMPS = (
    "speech_start",      # first voiced caller frame of the turn arrived
    "speech_end",        # last voiced caller frame arrived
    "tentative_end",     # speculative end-of-turn signal
    "turn_end",          # final end-of-turn decision
    "stt_final",         # final transcript for the turn received
    "retrieval_start",   # knowledge search started (on the tentative end, or for the reply's text)
    "retrieval_end",     # ... and its passages were ready
    "llm_request",       # LLM request sent (the one whose answer was spoken)
    "llm_first_token",   # first token of that answer
    "tts_request",       # first text sent to TTS
    "tts_first_audio",   # first audio chunk from TTS
    "first_frame_sent",  # first agent frame written to the carrier
    "agent_audio_end",   # agent reply finished playing (mark echoed, or its echo overdue)
    "interrupted",       # agent reply cut off by a barge-in
)

MAX_TIMELINES = 200
"""Completed turn timelines kept per call (a long call must not grow without bound)."""


class TurnTimeline:
    """Monotonic timestamps (seconds) for one turn; unset stamps are ``None``."""

    __slots__ = ("turn_id", *STAMPS, "speculative", "outcome")
    # One declared field per name in STAMPS (tests/engine/test_timeline.py holds them in step):
    # written out so a type checker and a reader see every stamp.
    turn_id: int
    speculative: bool
    outcome: TurnOutcome | None
    speech_start: float | None
    speech_end: float | None
    tentative_end: float | None
    turn_end: float | None
    stt_final: float | None
    retrieval_start: float | None
    retrieval_end: float | None
    llm_request: float | None
    llm_first_token: float | None
    tts_request: float | None
    tts_first_audio: float | None
    first_frame_sent: float | None
    agent_audio_end: float | None
    interrupted: float | None

    def __init__(self, turn_id: int) -> None:
        self.turn_id = turn_id
        self.speculative = False  # the spoken answer came from a speculative LLM request
        self.outcome = None  # how the turn ended, as the turn policy's commit said (none yet)
        self.speech_start = None
        self.speech_end = None
        self.tentative_end = None
        self.turn_end = None
        self.stt_final = None
        self.retrieval_start = None
        self.retrieval_end = None
        self.llm_request = None
        self.llm_first_token = None
        self.tts_request = None
        self.tts_first_audio = None
        self.first_frame_sent = None
        self.agent_audio_end = None
        self.interrupted = None

    def stamp(self, name: str, t: float, *, overwrite: bool = False) -> None:
        """Set a stamp; by default the first value wins (a retry must not hide the first attempt)."""
        if name not in STAMPS:
            raise ValueError(f"unknown timeline stamp {name!r}")
        if overwrite or getattr(self, name) is None:
            setattr(self, name, t)

    # -- derived figures, in milliseconds -----------------------------------------------

    def _span(self, start: str, end: str) -> float | None:
        a, b = getattr(self, start), getattr(self, end)
        return None if a is None or b is None else (b - a) * 1000.0

    @property
    def turn_latency_ms(self) -> float | None:
        """Caller's last voiced frame -> first agent frame sent: what the caller waits."""
        return self._span("speech_end", "first_frame_sent")

    def stages_ms(self) -> dict[str, float]:
        """Each stage's share of the turn, for the stages that happened."""
        spans = {
            "endpointing": self._span("speech_end", "turn_end"),
            "stt": self._span("turn_end", "stt_final"),
            "retrieval": self._span("retrieval_start", "retrieval_end"),
            "llm_first_token": self._span("llm_request", "llm_first_token"),
            "first_chunk": self._span("llm_first_token", "tts_request"),  # chunking, TTS handshake
            "tts_first_audio": self._span("tts_request", "tts_first_audio"),
            "send": self._span("tts_first_audio", "first_frame_sent"),
        }
        return {k: max(v, 0.0) for k, v in spans.items() if v is not None}

    @property
    def engine_added_ms(self) -> float | None:
        """Time on the critical path where the engine, not a provider or the caller, held the turn.

        Two hand-offs: from the moment the turn's text was ready (end-of-turn, or the STT
        final if later) to the LLM request, and from the moment audio could play (the first
        TTS audio, or end-of-turn if the audio was ready earlier) to the first frame sent.
        Waiting for trailing silence, for tokens and for audio is provider or caller time.
        A speculative request sent before the turn ended contributes no gap.
        """
        if self.first_frame_sent is None:
            return None
        ready = self.turn_end
        if self.stt_final is not None and (ready is None or self.stt_final > ready):
            ready = self.stt_final
        total = 0.0
        if ready is not None and self.llm_request is not None and self.llm_request > ready:
            total += self.llm_request - ready
        playable = self.tts_first_audio
        if self.turn_end is not None and (playable is None or self.turn_end > playable):
            playable = self.turn_end
        if playable is not None and self.first_frame_sent > playable:
            total += self.first_frame_sent - playable
        return total * 1000.0

    @property
    def speculation_saved_ms(self) -> float | None:
        """What starting the reply early saved the caller: the first frame went out at
        ``first_frame_sent``; without speculation the request would have gone when the turn's
        text was ready (end-of-turn or the final transcript, whichever came later), and the
        same provider times would have followed. None unless the spoken reply was speculative."""
        if not self.speculative or self.first_frame_sent is None or self.llm_request is None:
            return None
        ready = self.turn_end
        if self.stt_final is not None and (ready is None or self.stt_final > ready):
            ready = self.stt_final
        if ready is None or self.tts_first_audio is None:
            return None
        counterfactual = ready + (self.tts_first_audio - self.llm_request)
        return max(0.0, counterfactual - self.first_frame_sent) * 1000.0

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"turn_id": self.turn_id, "speculative": self.speculative}
        out.update({name: getattr(self, name) for name in STAMPS})
        out["turn_latency_ms"] = self.turn_latency_ms
        out["engine_added_ms"] = self.engine_added_ms
        out["speculation_saved_ms"] = self.speculation_saved_ms
        out["stages_ms"] = self.stages_ms()
        out["outcome"] = None if self.outcome is None else self.outcome.as_dict()
        return out

    def __iter__(self) -> Iterator[tuple[str, float | None]]:
        return ((name, getattr(self, name)) for name in STAMPS)


class TurnTimelines:
    """One call's turn timelines as its media session sees them: a turn opens when the caller
    starts to speak (or talks over the reply) and is stamped at its ends and at the reply's
    first frame and end. Called on endpoint and playout events, never per frame."""

    __slots__ = ("current", "recent", "_seq")

    def __init__(self) -> None:
        self.current: TurnTimeline | None = None
        self.recent: collections.deque[TurnTimeline] = collections.deque(maxlen=MAX_TIMELINES)
        self._seq = 0

    def speech_started(self, at: float) -> None:
        """A caller turn opens, or (speech resumed before its end) goes on: its first speech wins."""
        turn = self.current
        if turn is None or turn.turn_end is not None:
            self._seq += 1
            turn = self.current = TurnTimeline(self._seq)
            self.recent.append(turn)
        turn.stamp("speech_start", at)

    def tentative_end(self, now: float) -> None:
        if self.current is not None:
            self.current.stamp("tentative_end", now, overwrite=True)

    def turn_ended(self, speech_end: float, now: float) -> None:
        turn = self.current
        if turn is not None:
            turn.stamp("speech_end", speech_end, overwrite=True)
            turn.stamp("turn_end", now, overwrite=True)

    def first_frame_sent(self, now: float) -> TurnTimeline | None:
        """A reply's first frame went out: the turn it answers, now measured (None for a
        greeting, a reply to nothing measured, or a turn measured already)."""
        turn = self.current
        if turn is None or turn.turn_end is None or turn.first_frame_sent is not None:
            return None
        turn.stamp("first_frame_sent", now)
        return turn

    def audio_ended(self, now: float) -> None:
        """A reply played to its end."""
        turn = self.current
        if turn is not None and turn.first_frame_sent is not None:
            turn.stamp("agent_audio_end", now)

    def interrupted(self, now: float) -> None:
        """A barge-in: the latest turn answered, if its reply was still playing, was cut off."""
        for turn in reversed(self.recent):
            if turn.first_frame_sent is not None:
                if turn.agent_audio_end is None:
                    turn.stamp("interrupted", now)
                break
