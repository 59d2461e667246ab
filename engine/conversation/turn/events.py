"""What the turn policy is told (events) and what it asks for (commands).

Events carry the time they happened (``now``, the event loop's clock); the policy never reads a
clock. Commands are plain records the agent carries out in order. Both are created at turn
rate (a few per second at most), never per audio frame.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ...prosody import NO_AUDIO, PauseAudio
from ...turn_outcome import TurnOutcome

__all__ = [
    # events
    "Event", "SpeechStarted", "TentativeEnd", "SpeechResumed", "TurnEnded", "BargeInPending",
    "BargeInRejected", "VadBargeIn", "BargeIn", "Transcribed", "SttReady", "KeyPressed", "KeysHeard",
    "TimerFired", "ReplySpeaking", "ReplyAudioReady", "PlayoutDone", "ReplyFailed", "ToolStarted", "ToolFinished",
    "Greet", "Failing", "Stopped",
    # commands
    "Command", "Timer", "TurnOver", "EndTurn", "StartReply", "CommitReply", "DropReply", "Commit", "DiscardText",
    "FinalizeStt", "StartTimer", "CancelTimer", "ResumeAfterHold", "ConfirmBargeIn", "StampTurn", "SayFiller",
    "KeysEntered", "FailCall",
]


# -- events ---------------------------------------------------------------------------------


class Event:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SpeechStarted(Event):
    """The VAD heard the caller begin (``barge_in``: over the agent's audio, and confirmed)."""

    now: float
    barge_in: bool = False


@dataclass(frozen=True, slots=True)
class TentativeEnd(Event):
    """A short silence (20 ms): the turn may be over. Finalize, and maybe speculate.
    ``quiet_run``: the "speech" since the previous tentative end was far quieter than the
    caller's words (a breath in a pause, not noise that rivals them). ``audio``: the caller's
    last half second before the pause, for its final pitch contour (:mod:`engine.prosody`)."""

    now: float
    quiet_run: bool = False
    audio: PauseAudio = NO_AUDIO


@dataclass(frozen=True, slots=True)
class SpeechResumed(Event):
    """The caller spoke again after a tentative end, before the end of turn."""

    now: float


@dataclass(frozen=True, slots=True)
class TurnEnded(Event):
    """The VAD's end of turn (300 ms of silence)."""

    now: float


@dataclass(frozen=True, slots=True)
class BargeInPending(Event):
    """The caller's sound over the agent's audio: the session holds the audio meanwhile."""

    now: float


@dataclass(frozen=True, slots=True)
class BargeInRejected(Event):
    """That sound ended too soon for a barge-in (a backchannel, a cough)."""

    now: float


@dataclass(frozen=True, slots=True)
class VadBargeIn(Event):
    """The VAD confirms a barge-in. The policy answers with :attr:`TurnPolicy.barge_in_deferred`:
    False, drop the reply now; True, keep holding it until words (or their absence) decide."""

    now: float


@dataclass(frozen=True, slots=True)
class BargeIn(Event):
    """The reply ``utterance_id`` was cut off by the caller. ``returned_text``: the caller's words
    it answered, taken back out of the history because not a word of the reply was heard (they
    merge with what the caller says now). ``utterance_id`` is None when the playout had no
    utterance to attribute the cut to."""

    now: float
    utterance_id: int | None
    returned_text: str | None = None


@dataclass(frozen=True, slots=True)
class Transcribed(Event):
    now: float
    text: str
    is_final: bool
    speech_final: bool = False


@dataclass(frozen=True, slots=True)
class SttReady(Event):
    """The recogniser's stream opened (True) or was lost (False)."""

    ready: bool


@dataclass(frozen=True, slots=True)
class KeyPressed(Event):
    now: float
    digit: str


@dataclass(frozen=True, slots=True)
class KeysHeard(Event):
    """A finished key sequence, as it enters the conversation (PCI-masked where it must be)."""

    now: float
    text: str


class Timer(enum.StrEnum):
    FINAL_WAIT = "final_wait"
    """After the end of turn: the longest wait for a final the recogniser still owes."""
    HOLD = "hold"
    """The incomplete-turn hold: the words read unfinished, so the caller gets a moment more."""
    NOISE = "noise"
    """A barge-in held for words: none by then, and it was noise."""
    DTMF = "dtmf"
    """The inter-digit pause that ends a key sequence."""
    TOOL_FILLER = "tool_filler"
    """A tool has run this long: say the filler line."""


@dataclass(frozen=True, slots=True)
class TimerFired(Event):
    timer: Timer
    now: float


@dataclass(frozen=True, slots=True)
class ReplySpeaking(Event):
    """The reply's first audio went to the playout: the caller hears it from now on."""

    utterance_id: int


@dataclass(frozen=True, slots=True)
class ReplyAudioReady(Event):
    """A speculative reply's first audio arrived and is held: committing it now plays at once."""

    utterance_id: int


@dataclass(frozen=True, slots=True)
class PlayoutDone(Event):
    """The reply played to the end (mark echo or playout clock)."""

    utterance_id: int
    now: float


@dataclass(frozen=True, slots=True)
class ReplyFailed(Event):
    utterance_id: int
    error: str


@dataclass(frozen=True, slots=True)
class ToolStarted(Event):
    utterance_id: int
    now: float


@dataclass(frozen=True, slots=True)
class ToolFinished(Event):
    utterance_id: int
    now: float


@dataclass(frozen=True, slots=True)
class Greet(Event):
    """Say the first message (or the line a picked-up call resumes with)."""

    text: str


@dataclass(frozen=True, slots=True)
class Failing(Event):
    """The call is ending on a failure: no more replies. ``apology_id``: the utterance the apology
    plays as, when there is one (its playout end is the reply's end)."""

    reason: str
    apology_id: int | None = None


@dataclass(frozen=True, slots=True)
class Stopped(Event):
    now: float


# -- commands -------------------------------------------------------------------------------


class Command:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TurnOver(Command):
    """The caller's turn is judged over, and why: the VAD's end of turn, the recogniser's (the VAD
    hearing babble), noise, words or keys outside a VAD turn. Its :class:`Commit` follows once
    no final is owed."""

    reason: str


@dataclass(frozen=True, slots=True)
class EndTurn(Command):
    """The words say the turn is surely over: end it after the shorter silence of the media
    session's confident end, not the VAD's end of turn (:class:`TurnEnded` follows, unless the
    caller resumes first)."""


@dataclass(frozen=True, slots=True)
class StartReply(Command):
    """Generate a reply to ``user_text`` (or say ``fixed_text``). Uncommitted (speculative): its
    audio is held until :class:`CommitReply`."""

    utterance_id: int
    user_text: str
    speculative: bool
    committed: bool
    fixed_text: str | None = None
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class CommitReply(Command):
    """The speculative reply answers the committed turn: its audio may play."""

    utterance_id: int


@dataclass(frozen=True, slots=True)
class DropReply(Command):
    """Cancel the reply; ``reason`` says why it will not be heard."""

    utterance_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Commit(Command):
    """The caller's turn is over and its text known (``forced``: without the final it waited for,
    or after the hold). A :class:`StartReply` or :class:`CommitReply` answering it follows, unless
    ``text`` is empty (nothing to answer). ``outcome``: how the turn ended, for its record."""

    text: str
    forced: bool
    reason: str
    outcome: TurnOutcome


@dataclass(frozen=True, slots=True)
class DiscardText(Command):
    """Words heard that will answer nothing, and why."""

    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class FinalizeStt(Command):
    """Ask the recogniser for the final of what it heard (where it cannot, this flushes its audio)."""


@dataclass(frozen=True, slots=True)
class StartTimer(Command):
    timer: Timer
    deadline: float


@dataclass(frozen=True, slots=True)
class CancelTimer(Command):
    timer: Timer


@dataclass(frozen=True, slots=True)
class ResumeAfterHold(Command):
    """The sound over the reply was no speech: the held reply goes on."""


@dataclass(frozen=True, slots=True)
class ConfirmBargeIn(Command):
    """Words came over a held reply: it is a barge-in, drop the reply."""


@dataclass(frozen=True, slots=True)
class StampTurn(Command):
    name: str
    at: float


@dataclass(frozen=True, slots=True)
class SayFiller(Command):
    """Say the filler line: ``"tool"`` as part of reply ``utterance_id`` while its tool runs,
    ``"retry"`` as an utterance of its own while a failed reply is retried."""

    utterance_id: int
    kind: str


@dataclass(frozen=True, slots=True)
class KeysEntered(Command):
    """A key sequence is complete (terminator, length or pause)."""

    digits: str


@dataclass(frozen=True, slots=True)
class FailCall(Command):
    reason: str
