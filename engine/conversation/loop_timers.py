"""The turn policy's timers kept on the event loop: the IO half of :mod:`.turn.timers`.

The policy asks for a deadline with ``StartTimer`` and calls it off with ``CancelTimer``; each
becomes one :class:`asyncio.TimerHandle` here, replaced when the same timer is started again,
and its firing is handed back (as ``TimerFired``, by the agent) for the policy to judge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .turn import Timer


class LoopTimers:
    __slots__ = ("_fired", "_handles")

    def __init__(self, fired: Callable[[Timer], None]) -> None:
        self._fired = fired
        self._handles: dict[Timer, asyncio.TimerHandle] = {}

    def start(self, loop: asyncio.AbstractEventLoop, timer: Timer, deadline: float) -> None:
        self.cancel(timer)
        self._handles[timer] = loop.call_at(deadline, self._fire, timer)

    def cancel(self, timer: Timer) -> None:
        handle = self._handles.pop(timer, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def _fire(self, timer: Timer) -> None:
        self._handles.pop(timer, None)
        self._fired(timer)
