"""The turn policy: when the caller's turn is over, what the agent answers, and when it keeps quiet.

A sans-IO state machine in the style of h11 and aioquic (see :mod:`.policy`): typed events in
(:mod:`.events`), typed commands out, time passed in. :class:`~engine.conversation.agent.CallAgent`
feeds it what the media session and the recogniser report, and carries out its commands
(provider streams, timers on the event loop, the playout).
"""

from .config import TurnConfig
from .events import (
    BargeIn,
    BargeInPending,
    BargeInRejected,
    CancelTimer,
    Command,
    Commit,
    CommitReply,
    ConfirmBargeIn,
    DiscardText,
    DropReply,
    EndTurn,
    Event,
    FailCall,
    Failing,
    FinalizeStt,
    Greet,
    KeyPressed,
    KeysEntered,
    KeysHeard,
    PlayoutDone,
    ReplyAudioReady,
    ReplyFailed,
    ReplySpeaking,
    ResumeAfterHold,
    SayFiller,
    SpeechResumed,
    SpeechStarted,
    StampTurn,
    StartReply,
    StartTimer,
    Stopped,
    SttReady,
    TentativeEnd,
    Timer,
    TimerFired,
    ToolFinished,
    ToolStarted,
    Transcribed,
    TurnEnded,
    TurnOver,
    VadBargeIn,
)
from .policy import CallerTurn, TurnPolicy
from .replies import ReplyView, SpeculationStats
from .words import same_words, word_count

__all__ = [
    "Event", "SpeechStarted", "TentativeEnd", "SpeechResumed", "TurnEnded", "BargeInPending", "BargeInRejected",
    "VadBargeIn", "BargeIn", "Transcribed", "SttReady", "KeyPressed", "KeysHeard", "TimerFired",
    "ReplySpeaking", "ReplyAudioReady", "PlayoutDone", "ReplyFailed", "ToolStarted", "ToolFinished", "Greet",
    "Failing", "Stopped",
    "Command", "Timer", "TurnOver", "EndTurn", "StartReply", "CommitReply", "DropReply", "Commit", "DiscardText",
    "FinalizeStt", "StartTimer", "CancelTimer", "ResumeAfterHold", "ConfirmBargeIn", "StampTurn", "SayFiller",
    "KeysEntered", "FailCall", "CallerTurn", "ReplyView", "SpeculationStats", "TurnConfig", "TurnPolicy",
    "same_words", "word_count",
]
