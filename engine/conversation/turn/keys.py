"""Keys the caller presses, into sequences: a terminator, a length or a pause ends one.

A part of the policy (sans-IO, like :mod:`.replies`): it shares the policy's outbox and
:class:`~.timers.Timers`, whose DTMF timer is the pause between two keys.
"""

from __future__ import annotations

from ..dtmf import DtmfCollector, GatherConfig
from .events import KeysEntered, Timer
from .timers import Timers


class Keys:
    __slots__ = ("_collector", "_timers")

    def __init__(self, timers: Timers, gather: GatherConfig) -> None:
        self._timers = timers
        self._collector = DtmfCollector(gather)

    def reconfigure(self, gather: GatherConfig) -> None:
        self._collector = DtmfCollector(gather)

    def press(self, digit: str, now: float) -> None:
        """A key: the sequence ends on it (:class:`KeysEntered`), or the pause timer restarts."""
        done = self._collector.press(digit, now)
        self._timers.cancel(Timer.DTMF)
        if done is not None:
            self._timers.out.append(KeysEntered(done))
        elif self._collector.deadline is not None:
            self._timers.start(Timer.DTMF, self._collector.deadline)

    def paused(self, now: float) -> None:
        """The DTMF timer fired: the pause since the last key ends the sequence."""
        digits = self._collector.expire(now)
        if digits:
            self._timers.out.append(KeysEntered(digits))
