"""Speculation: a reply started before the caller's turn is over, its audio held until it is.

A part of the policy (sans-IO, like :mod:`.replies`, whose reply in flight it starts, corrects
and drops):

* **At the pause.** At the tentative end, a reply starts on words that read complete
  (:func:`.endpoint.worth_speculating`; where the recogniser gave no final mark, the caller's
  final pitch contour has its say). New words drop it (:meth:`.Replies.drop_stale_speculation`).
* **On the final.** The final for that pause, if it changes the words, restarts the reply on
  them, or drops it when they no longer read complete.
* **At a hold.** A turn held on words that read unfinished has been silent for a whole end of
  turn already: likely enough done that its reply should be ready when the hold runs out.
* **The opening guess.** A caller answering the phone mostly says "Hello?", shorter than any
  interim covers, so its reply would wait for the final. With ``opening_guess`` the reply to
  those words starts as the caller starts; their final keeps it only if it says the same words.
* **Sure words.** With the final for a pause in, the speculative reply on exactly its words, and
  that reply's first audio in hand, words that are surely finished (a question:
  :func:`.endpoint.surely_finished`) may end the turn sooner (the policy's confident end).

The commit decides in the end: it keeps the reply when the words match (:meth:`.Replies.answer`).
"""

from __future__ import annotations

from collections.abc import Callable

from ...prosody import Contour
from .config import TurnConfig
from .endpoint import surely_finished, worth_speculating
from .replies import Replies
from .words import same_words


class Speculator:
    __slots__ = ("_replies",)

    def __init__(self, replies: Replies) -> None:
        self._replies = replies

    def at_pause(self, text: str, finals_used: int, config: TurnConfig, *, opening: bool,
                 contour: Callable[[], Contour] | None, final_owed: bool) -> None:
        """The tentative end. (Without Finalize and with a final owed, ``text`` lacks the words
        just said: the reply starts when their final comes, :meth:`on_final`.)"""
        replies = self._replies
        replies.drop_stale_speculation(text)
        if (replies.current is None
                and worth_speculating(text, config.incomplete_turn_hold_ms, opening=opening, contour=contour)
                and (config.can_finalize or not final_owed)):
            self._start(text, finals_used)

    def on_final(self, text: str, finals_used: int, config: TurnConfig, *, opening: bool,
                 contour: Callable[[], Contour] | None) -> None:
        """The final for the tentative end's finalize arrived before the turn ended: start (or
        correct) the speculative reply now, with text that will not change."""
        replies = self._replies
        reply = replies.current
        worth = worth_speculating(text, config.incomplete_turn_hold_ms, opening=opening, contour=contour)
        if reply is not None:
            if reply.fixed_text is not None or reply.committed or same_words(reply.user_text, text):
                return
            if worth:
                replies.speculation.restarted += 1
            else:
                replies.speculation.cancelled += 1
            replies.drop("the final changed the words")
        elif worth:
            replies.speculation.started += 1
        if worth:
            replies.start(text, finals_used, speculative=True, committed=False)

    def unless_one_runs(self, text: str, finals_used: int) -> None:
        """A reply on ``text`` unless one is in flight: at a hold (silent for a whole end of turn,
        likely enough done that the reply should be ready when the hold runs out), and for the
        opening guess as the caller's first words begin (dropped like any speculation when other
        words show up)."""
        if self._replies.current is None:
            self._start(text, finals_used)

    def _start(self, text: str, finals_used: int) -> None:
        self._replies.speculation.started += 1
        self._replies.start(text, finals_used, speculative=True, committed=False)

    def sure(self, text: str, *, opening: bool) -> bool:
        """The speculative reply, on exactly ``text`` and with its first audio in, answers words
        that are surely finished."""
        reply = self._replies.current
        return (reply is not None and reply.speculative and not reply.committed and reply.audio_ready
                and reply.fixed_text is None and same_words(reply.user_text, text)
                and surely_finished(text, opening=opening))
