"""How a caller's turn ended, as the turn policy decided it: the account each turn record keeps.

The turn policy (:mod:`engine.conversation.turn.policy`) fills one :class:`TurnOutcome` in each
:class:`~engine.conversation.turn.events.Commit`; the agent puts it on the turn's
:class:`~engine.timeline.TurnTimeline`, and from there it goes wherever turns are reported (the
turn record, the store and API, the ``call.turn`` event, /metrics, the bench). Small enums, not
free text, so they can be counted and stored as columns. Created once per turn, never per frame.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class TurnEnd(enum.StrEnum):
    """What ended the caller's turn (the last decision before the commit)."""

    VAD = "vad"
    """The VAD's end of turn (its silence)."""
    CONFIDENT = "confident"
    """The shorter silence of a confident end: the words were surely finished (EndTurn)."""
    RECOGNISER = "recogniser"
    """The recogniser's own end (it heard the speech end while the VAD, in babble, did not)."""
    NOISE = "noise"
    """Noise kept the VAD on without new words."""
    KEYS = "keys"
    """A key sequence ended."""
    WORDS = "words"
    """Words the recogniser heard without a VAD turn (quiet speech)."""
    HOLD_RAN_OUT = "hold_ran_out"
    """The words read unfinished and the hold ran out without more speech (see ``hold``)."""
    FINAL_LATE = "final_late"
    """The turn had ended but its final was late: committed without it (``final_wait_s``)."""


class Hold(enum.StrEnum):
    """Why the turn waited past its end: the verdict on its words."""

    INCOMPLETE = "incomplete"
    """Words that read unfinished: the whole ``incomplete_turn_hold_ms``."""
    UNSURE = "unsure"
    """Words that might go on: half of it."""


class Speculation(enum.StrEnum):
    """What became of a reply started before the turn was committed."""

    KEPT = "kept"
    """A speculative reply on the same words answers the turn."""
    RESTARTED = "restarted"
    """A speculative reply was in flight on other words: the answer started again at the commit."""
    NONE = "none"
    """No speculative reply at the commit."""


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    end: TurnEnd
    speculation: Speculation = Speculation.NONE
    hold: Hold | None = None
    """The last hold the turn waited through: it ran out (``end`` hold_ran_out), or the VAD heard
    more "speech" in it (the caller went on, or noise) and the turn went on to another end."""
    contour: bool = False
    """The caller's final pitch contour decided the last verdict where the words alone would not
    have: a rise held words that read complete (a hold that ran out), or a fall ended unsure words
    at once."""
    merged: bool = False
    """The turn had ended once and the VAD heard "speech" again before it committed (in a hold, or
    while a final was owed): the caller went on, or noise did, and the turns merged into this one."""

    def as_dict(self) -> dict[str, Any]:
        hold = None if self.hold is None else self.hold.value
        return {"end": self.end.value, "hold": hold, "contour": self.contour, "speculation": self.speculation.value,
                "merged": self.merged}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TurnOutcome:
        """The outcome :meth:`as_dict` gave (a ValueError names a value that is not one)."""
        hold = data.get("hold")
        return cls(TurnEnd(data["end"]), Speculation(data.get("speculation") or "none"),
                   None if hold is None else Hold(hold), bool(data.get("contour")), bool(data.get("merged")))

    def describe(self) -> str:
        """One short line for people: "vad, speculation kept", "hold: unsure words (pitch rose), no
    speculation", "vad after a broken hold (unsure words)", "vad after more speech (merged)"."""
        return describe(self.as_dict())


def describe(outcome: dict[str, Any] | None, *, kept: bool = True) -> str:
    """:meth:`TurnOutcome.describe` for the outcome as stored or sent (a dict, or None: unknown);
    ``kept=False`` leaves a kept speculation unsaid (where it is the rule)."""
    if not outcome:
        return "no account"
    end, hold, contour = outcome.get("end"), outcome.get("hold"), outcome.get("contour")
    if hold and end == TurnEnd.HOLD_RAN_OUT:
        parts = [f"hold: {hold} words" + (" (pitch rose)" if contour else "")]
    else:
        broken = (f" after a broken hold ({hold} words)" if hold
                  else " after more speech (merged)" if outcome.get("merged") else "")
        parts = [f"{end}" + (" (pitch fell)" if contour else "") + broken]
    speculation = outcome.get("speculation")
    if speculation == Speculation.NONE:
        parts.append("no speculation")  # the reply started only at the commit
    elif speculation and (kept or speculation != Speculation.KEPT):
        parts.append(f"speculation {speculation}")
    return ", ".join(parts)
