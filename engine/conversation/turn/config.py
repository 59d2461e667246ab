"""The turn policy's settings: the agent's, and what its recogniser and media session can do."""

from __future__ import annotations

from dataclasses import dataclass

from ..dtmf import GatherConfig


@dataclass(frozen=True, slots=True)
class TurnConfig:
    speculative: bool = True
    opening_guess: str = ""
    """Words a caller who answers the phone most likely says first ("Hello?"): the reply to them
    starts as the caller's first words do, kept if they say exactly these (case and punctuation
    aside). No interim covers a word that short, so otherwise the reply waits for its final. ""
    (the default here): off."""
    incomplete_turn_hold_ms: int = 700
    barge_in_words_wait_s: float = 0.6
    final_wait_s: float = 0.8
    """After the end of turn, the longest wait for a final the recogniser owes."""
    can_finalize: bool = True
    """The recogniser answers a Finalize (Deepgram); otherwise finals come on its own segmentation."""
    interim_results: bool = True
    """Words come while the caller talks, so a barge-in can wait for them."""
    confident_end: bool = False
    """The media session can end a surely finished turn after a shorter silence than the VAD's
    end of turn (its ``confident_end_of_turn_ms``)."""
    noise_wordless_s: float = 0.28
    """Noise ends a turn once the recogniser has heard this long without new words after the
    pause that followed the caller's last ones: the VAD's end of turn judged by words
    (``end_of_turn_ms`` from the last voiced frame, ``tentative_end_ms`` before that pause)."""
    tool_filler_after_s: float = 1.5
    """A tool running this long gets the filler line (0: never)."""
    final_contour: bool = True
    """Let the caller's final pitch contour at a pause correct the words' verdict where the
    recogniser gave no final punctuation (the agent reads it from the audio at each pause)."""
    gather: GatherConfig = GatherConfig()
