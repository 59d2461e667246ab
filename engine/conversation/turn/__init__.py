"""The turn policy: when the caller's turn is over, what the agent answers, and when it keeps quiet.

A sans-IO state machine in the style of h11 and aioquic (see :mod:`.policy`): typed events in
(:mod:`.events`), typed commands out, time passed in. :class:`~engine.conversation.agent.CallAgent`
feeds it what the media session and the recogniser report, and carries out its commands
(provider streams, timers on the event loop, the playout).
"""

from .events import *  # noqa: F401,F403  (the vocabulary is the package's public surface)
from .events import __all__ as _events
from .policy import CallerTurn, TurnConfig, TurnPolicy
from .replies import ReplyView, SpeculationStats
from .words import same_words, word_count

__all__ = [*_events, "CallerTurn", "ReplyView", "SpeculationStats", "TurnConfig", "TurnPolicy",
           "same_words", "word_count"]
