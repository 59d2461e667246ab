"""When the caller's own voice was last heard, as opposed to their line's background.

The VAD calls babble "speech" (it is speech), so "voiced" alone cannot tell a caller still
talking from a cafe behind a caller who stopped. Their level can: babble at 10-20 dB SNR
peaks within a few dB of the line's typical level between words, while the caller, even in
the quiet stretch of a line (a TTS voice dropping ~9 dB for half a second), stands far above
a clean line's floor. The turn policy uses it where a finals-only recogniser's final, which
comes on its own segmentation, would end a turn the VAD still holds open (see
:func:`engine.conversation.turn.endpoint.recogniser_ends_turn`).
"""

from __future__ import annotations

import math

VOICE_OVER_BACKGROUND = 6.0
"""A voiced frame this many times (15.6 dB) over the background's median level is the caller's
voice. Corpus babble at 10 dB SNR peaks at 1.9x the median of its frames the VAD judged
silence, and at 2x every noise-babble-10db turn is missed on a finals-only engine; a clean
line's floor leaves the quiet stretches of a line far above (the virtual bench keeps 0
premature replies up to 40x). 6 sits well clear of babble and below the louder syllables of a
caller talking 10 dB over it."""

_STEP = 1.2
"""The median's multiplicative step per unvoiced frame (1.6 dB): a line 40 dB louder is learnt
within half a second, and the estimate jitters well inside the margin above."""

_FLOOR_RMS = 10.0
"""Digital silence (a clean line) keeps the background here (about -70 dBFS), not at zero."""


class CallerVoice:
    """Fed every caller frame: its rms, and whether the VAD heard the caller in it (never while
    the agent is heard and the caller listens: their line is then their background, as the VAD
    learns it). O(1), no allocation."""

    __slots__ = ("background", "voice_at")

    def __init__(self) -> None:
        self.background = 0.0
        """A frugal median of the rms of the background frames (0: none yet)."""
        self.voice_at = -math.inf
        """When the last voiced frame that stood over the background was heard."""

    def frame(self, rms: int, voiced: bool, now: float) -> None:
        background = self.background
        if voiced:
            if rms > background * VOICE_OVER_BACKGROUND:
                self.voice_at = now
            return
        if background == 0.0:
            self.background = max(float(rms), _FLOOR_RMS)
        elif rms > background:
            self.background = background * _STEP
        elif background > _FLOOR_RMS:
            self.background = max(background / _STEP, _FLOOR_RMS)
