"""The policy's timers: deadlines it asked the agent to keep, and the commands that ask."""

from __future__ import annotations

from .events import CancelTimer, Command, StartTimer, Timer


class Timers:
    """Pending deadlines by timer. Starting and cancelling append the command to ``out``, the
    outbox the policy's parts share for the event being handled."""

    __slots__ = ("_deadlines", "out")

    def __init__(self, out: list[Command]) -> None:
        self._deadlines: dict[Timer, float] = {}
        self.out = out

    def deadline(self, timer: Timer) -> float | None:
        return self._deadlines.get(timer)

    def start(self, timer: Timer, deadline: float) -> None:
        self._deadlines[timer] = deadline
        self.out.append(StartTimer(timer, deadline))

    def cancel(self, timer: Timer) -> None:
        if self._deadlines.pop(timer, None) is not None:
            self.out.append(CancelTimer(timer))

    def fired(self, timer: Timer) -> bool:
        """A timer went off: whether it was still wanted (not cancelled meanwhile)."""
        return self._deadlines.pop(timer, None) is not None

    def cancel_all(self) -> None:
        for timer in list(self._deadlines):
            self.cancel(timer)
