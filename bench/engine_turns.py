"""Which of the engine's turns a reply the callee heard was: the engine's account of it.

The engine keeps each measured turn's timeline (``/bench/turns``, with its stream id and the turn
policy's outcome: how the turn ended, its hold, its speculation). A reply the callee heard at ``t``
(its first voiced frame) is the engine's turn on that call's stream whose first frame went out
last at or before ``t``, and not before the caller began the utterance the reply came in or
after (a reply to nothing the engine measured has no account). The engine and the callee read
one clock: the same loop on the virtual clock, the machine's monotonic clock on the real one.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from typing import Any

from engine.turn_outcome import describe

from .callee import CallMeasurement, TurnResult

SLACK_S = 0.05
"""The engine's clock (uvloop reads it in whole milliseconds, once per loop iteration) and the
socket between: a frame can seem to arrive a little before it was sent."""


class EngineTurns:
    """The engine's turns by stream: the measured ones by when their first frame went out, the
    ones it answered without measuring them (``unmeasured``) by when they were committed."""

    def __init__(self, engine_turns: Iterable[dict[str, Any]],
                 unmeasured: Iterable[dict[str, Any]] = ()) -> None:
        self._sent = _by_stream(engine_turns, "first_frame_sent")
        self._committed = _by_stream(unmeasured, "stt_final")  # (the commit stamps it, with its outcome)

    def outcome(self, call: CallMeasurement, turn: TurnResult) -> dict[str, Any] | None:
        """The engine's outcome for the reply heard on ``turn`` (premature or not), if it gave one:
        the measured turn whose first frame went out last by then, else the unmeasured turn
        committed last by then (a reply that went out while the caller had begun again, or while
        the VAD still heard noise), since the caller began."""
        heard = turn.premature_at if turn.premature else turn.first_agent_audio
        began = turn.speech_start_sent if turn.speech_start_sent is not None else turn.speech_end_sent
        if heard is None or began is None:
            return None
        stream = call.stream_id or ""
        return _last(self._sent.get(stream), began, heard) or _last(self._committed.get(stream), began, heard)


def _by_stream(turns: Iterable[dict[str, Any]], stamp: str) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """(``stamp``, turn) by stream, in time order (turns without either left out)."""
    out: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for turn in turns:
        at, stream = turn.get(stamp), turn.get("stream_id")
        if at is not None and stream is not None:
            out.setdefault(stream, []).append((at, turn))
    for pairs in out.values():
        pairs.sort(key=lambda pair: pair[0])
    return out


def _last(turns: list[tuple[float, dict[str, Any]]] | None, began: float, heard: float) -> dict[str, Any] | None:
    """The outcome of the last of ``turns`` stamped by ``heard``, if that was not before ``began``."""
    if not turns:
        return None
    i = bisect.bisect_right(turns, heard + SLACK_S, key=lambda pair: pair[0])
    if i == 0 or turns[i - 1][0] < began - SLACK_S:
        return None
    outcome: dict[str, Any] | None = turns[i - 1][1].get("outcome")
    return outcome


def ends(engine_turns: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How the engine's measured turns ended, most first: "vad", "hold: unsure words", "vad after
    more speech (merged)"... (the pitch and the speculation aside)."""
    counted = Counter(describe({**outcome, "contour": False, "speculation": None})
                      for outcome in (t.get("outcome") for t in engine_turns) if outcome)
    return dict(counted.most_common())


def told(turn: dict[str, Any]) -> str:
    """A listed turn's outcome (``turns`` in the bench's JSON), for its lines: " (hold: unsure
    words)"; a kept speculation is the rule and goes unsaid there. A reply the engine did not
    measure (one that began before the VAD's end of turn: noise or the recogniser ended it) has
    no account; a turn with no reply, nothing to say."""
    outcome = turn.get("outcome")
    if outcome:
        return f" ({describe(outcome, kept=False)})"
    return " (no engine account)" if turn.get("latency_ms") is not None or turn.get("premature") else ""
