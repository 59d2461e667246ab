"""Collect DTMF keys into a caller turn: a terminator, a digit count, or a pause ends it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GatherConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inter_digit_timeout_s: float = Field(1.5, gt=0, description="A pause this long ends the key sequence.")
    terminator: str = Field("#", max_length=1, description="Key that ends the sequence at once ('' for none).")
    max_digits: int = Field(32, ge=1, le=128)


class DtmfCollector:
    """Sans-IO: ``press`` keys with their time; ``due`` tells when a pause would end the sequence."""

    __slots__ = ("config", "_digits", "_last_at")

    def __init__(self, config: GatherConfig | None = None) -> None:
        self.config = config or GatherConfig()
        self._digits: list[str] = []
        self._last_at = 0.0

    def press(self, digit: str, now: float) -> str | None:
        """Add a key; returns the finished sequence when this key completes it."""
        self._last_at = now
        if self.config.terminator and digit == self.config.terminator:
            return self._take(digit)
        self._digits.append(digit)
        if len(self._digits) >= self.config.max_digits:
            return self._take()
        return None

    def expire(self, now: float) -> str | None:
        """The finished sequence if the inter-digit pause has passed, else None."""
        if self._digits and now - self._last_at >= self.config.inter_digit_timeout_s:
            return self._take()
        return None

    @property
    def deadline(self) -> float | None:
        return self._last_at + self.config.inter_digit_timeout_s if self._digits else None

    @property
    def pending(self) -> str:
        return "".join(self._digits)

    def _take(self, terminator: str = "") -> str:
        digits = "".join(self._digits) + terminator
        self._digits.clear()
        return digits


def describe_keys(digits: str) -> str:
    """How key presses enter the conversation: 'The caller pressed 4 2 7 #.'"""
    return "The caller pressed " + " ".join(digits) + " on the keypad."
