"""The account of the caller's current turn that its :class:`~.events.Commit` carries.

The policy tells it what happened as it decides (the turn ended, and how; a hold began; the caller
spoke again) and asks it for the :class:`~engine.turn_outcome.TurnOutcome` at the commit. Sans-IO,
touched a few times a turn, never per frame.
"""

from __future__ import annotations

from collections.abc import Callable

from ...prosody import Contour
from ...turn_outcome import Hold, Speculation, TurnEnd, TurnOutcome
from ..turn_completion import Verdict, hold_ms, judge_text, judge_turn

_HOLDS = {Verdict.INCOMPLETE: Hold.INCOMPLETE, Verdict.UNSURE: Hold.UNSURE}

TURN_OVER = {
    TurnEnd.VAD: "end of turn", TurnEnd.CONFIDENT: "end of turn",
    TurnEnd.RECOGNISER: "the recogniser heard the speech end", TurnEnd.NOISE: "noise kept the VAD on without new words",
    TurnEnd.WORDS: "words without a VAD turn", TurnEnd.KEYS: "keys",
}
"""The :class:`~.events.TurnOver` reason for each way a turn ends before its commit."""


class TurnAccount:
    __slots__ = ("ended_by", "over", "merged", "sooner_at", "hold", "broken", "contour")

    def __init__(self) -> None:
        self.ended_by = TurnEnd.VAD
        self.over = False  # the turn has ended (not yet committed)
        self.merged = False  # ... and the caller spoke again before it committed
        self.sooner_at: float | None = None
        """When the policy asked for the confident end (EndTurn): the session's next end of turn is
        it, unless the caller's voice came back after."""
        self.hold: Hold | None = None  # the hold the turn is in
        self.broken: Hold | None = None  # ... and the last one speech broke (the turns merged)
        self.contour = False

    def speech(self) -> None:
        """The caller spoke (again): a hold is broken, a turn that had ended merges into this one."""
        self.merged = self.merged or self.over
        self.over = False
        if self.hold is not None:
            self.broken, self.hold = self.hold, None
        self.contour = False

    def ended(self, end: TurnEnd) -> None:
        self.ended_by, self.over = end, True

    def vad_end(self, voice_since: float) -> TurnEnd:
        """How the session's end of turn ended the turn: its own silence, or the confident end's
        (asked for since the caller's voice last began, at ``voice_since``)."""
        return TurnEnd.CONFIDENT if self.sooner_at is not None and self.sooner_at > voice_since else TurnEnd.VAD

    def judge(self, text: str, incomplete_hold_ms: int, *, opening: bool,
              contour: Callable[[], Contour] | None) -> int:
        """The ended turn's words judged (:func:`~..turn_completion.judge_turn`): how long to hold it
        (ms, 0: commit now). Notes the hold's verdict and whether the caller's pitch ``contour``
        changed the words' own."""
        if not text:
            self.hold, self.contour = None, False
            return 0
        verdict = judge_turn(text, opening=opening, contour=contour)
        held = hold_ms(verdict, incomplete_hold_ms)
        self.hold = _HOLDS.get(verdict) if held else None
        self.contour = contour is not None and verdict is not judge_text(text, opening=opening)
        return held

    def outcome(self, *, forced: bool, hold_over: bool, speculation: Speculation) -> TurnOutcome:
        """The outcome of the commit being made; the account starts over for the next turn."""
        if hold_over:
            end = TurnEnd.HOLD_RAN_OUT
        elif forced:
            end = TurnEnd.FINAL_LATE
        else:
            end = self.ended_by
        outcome = TurnOutcome(end, speculation, self.hold if hold_over else self.broken, self.contour, self.merged)
        self.sooner_at, self.hold, self.broken, self.contour = None, None, None, False
        self.ended_by, self.over, self.merged = TurnEnd.VAD, False, False
        return outcome
