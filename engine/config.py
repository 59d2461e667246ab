"""Engine tunables as pydantic models.

They are plain models (not settings) so the engine can be configured from any
source; the ``callagent`` settings tree nests them and fills them from the
environment. Times are in milliseconds, like the knobs a user turns.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FRAME_MS = 20
"""Every engine stage works on 20 ms frames: the Telnyx RTP packet time."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JitterConfig(_Model):
    min_depth_ms: int = Field(0, ge=0, le=200, description="Lowest wait for a missing frame.")
    max_depth_ms: int = Field(60, ge=0, le=500, description="Highest wait for a missing frame.")
    jitter_multiplier: float = Field(
        3.0, gt=0, description="Target depth = multiplier x observed inter-arrival jitter, clamped."
    )

    @model_validator(mode="after")
    def _ordered(self) -> JitterConfig:
        if self.min_depth_ms > self.max_depth_ms:
            raise ValueError("jitter min_depth_ms must not exceed max_depth_ms")
        return self


class PlayoutConfig(_Model):
    mode: Literal["paced", "bulk"] = Field(
        "paced", description="paced: 20 ms frames on a clock; bulk: send as produced, rely on clear."
    )
    lead_ms: int = Field(80, ge=FRAME_MS, le=1000, description="How far ahead of real time frames are sent.")
    tick_ms: int = Field(
        40, ge=5, le=200,
        description="Sender wake-up period while audio is queued (two frames a wake-up at the default 80 ms lead).",
    )
    mark_echo_margin_ms: int = Field(
        # The echo of a working carrier comes within a network round trip plus its own playout
        # buffering (tens of ms, ~150 ms on long paths), so it nearly always wins; a lost echo then
        # costs at most a quarter second, less than a caller takes to answer, so the next turn still
        # finds the agent free to speculate.
        250, ge=0, le=10_000,
        description=(
            "How long past the moment a reply's last frame should have played (by the engine's paced "
            "playout clock) to wait for the carrier's mark echo before taking the reply as played "
            "anyway: its history entry, turn report, a pending hang-up or transfer, and the next turn "
            "wait on it. A late echo then only confirms."
        ),
    )


class VadConfig(_Model):
    kind: Literal["energy", "webrtc", "hybrid", "silero"] = Field(
        "hybrid", description="Voice activity detector; see engine/vad.py for the trade-offs."
    )
    webrtc_mode: int = Field(3, ge=0, le=3, description="webrtcvad aggressiveness (3 = fewest false alarms).")
    energy_margin_db: float = Field(
        9.0, ge=0, description="Energy gate: how far above the adaptive noise floor a frame must be."
    )
    energy_min_dbfs: float = Field(-50.0, description="Energy gate: frames quieter than this are never speech.")
    background_margin_db: float = Field(
        7.0, ge=1.0,
        description="Hybrid, in background noise whose level swings (babble, traffic): how far above "
        "the background's median level a frame must be to start speech (2 dB less to go on).",
    )
    silero_threshold: float = Field(0.5, gt=0, lt=1, description="Silero speech probability threshold.")


class EndpointingConfig(_Model):
    min_speech_ms: int = Field(60, ge=FRAME_MS, description="Voiced audio needed to declare speech start.")
    tentative_end_ms: int = Field(
        20,
        ge=FRAME_MS,
        description=(
            "Trailing silence before the tentative end-of-turn signal, which asks the recogniser to "
            "finalize and may start the reply speculatively (its audio is held until end_of_turn_ms). "
            "The final transcript, the model's first token and the first audio all wait on it, so it "
            "sits at one frame; raise it for a recogniser whose accuracy suffers from frequent "
            "finalization, at that cost per turn."
        ),
    )
    end_of_turn_ms: int = Field(
        # Two frames at least: a single unvoiced frame is tolerated inside speech (VADs drop
        # frames mid-word), so one frame of silence can never end a turn.
        300, ge=2 * FRAME_MS, description="Trailing silence that ends the caller's turn."
    )
    confident_end_of_turn_ms: int = Field(
        # Measured (docs/benchmarks.md): no question in the corpus or the field callers is followed
        # by more words within a line except a hesitant one ("on... Tuesday?", which is excluded),
        # while closed statements are, 200-340 ms later: statements keep end_of_turn_ms. It ends a
        # turn only once the reply has audio (ending before gains nothing, and noise after an
        # early end would open a new turn that drops a reply not yet speaking), so with providers
        # as fast as the bench's `fast` profile the turn ends 260-290 ms into the silence, not 200.
        200, ge=2 * FRAME_MS,
        description=(
            "Trailing silence that ends a turn whose words are surely finished: the recogniser's final "
            "for the pause is in and closes a question (?) whose words read finished without hesitation "
            "(a caller's opening \"Hello?\" included), and the speculative reply was started on exactly "
            "those words and has its first audio (see engine/conversation/turn/endpoint.py, "
            "surely_finished); speech that resumes first cancels it. Other turns wait end_of_turn_ms. "
            "At or above end_of_turn_ms, or at or below tentative_end_ms: off. 200 (the default) "
            "measured safe for the words (docs/benchmarks.md)."
        ),
    )
    min_barge_in_ms: int = Field(
        400,
        ge=FRAME_MS,
        description=(
            "Caller speech over agent audio that confirms a barge-in and drops the reply. The agent "
            "already pauses after min_speech_ms; shorter sounds (uh-huh, okay) let it go on."
        ),
    )

    @model_validator(mode="after")
    def _ordered(self) -> EndpointingConfig:
        if self.tentative_end_ms > self.end_of_turn_ms:
            raise ValueError("tentative_end_ms must not exceed end_of_turn_ms")
        return self


class EngineConfig(_Model):
    jitter: JitterConfig = JitterConfig()
    playout: PlayoutConfig = PlayoutConfig()
    vad: VadConfig = VadConfig()
    endpointing: EndpointingConfig = EndpointingConfig()
    stall_ms: int = Field(
        200,
        ge=FRAME_MS,
        description="No inbound media for this long counts as caller silence (carrier paused or muted).",
    )
    stream_start_timeout_s: float = Field(
        10.0, gt=0, description="A media WebSocket that has not sent its start frame by then is closed."
    )
    stream_idle_timeout_s: float = Field(
        30.0, gt=0,
        description="A started media stream that sends no message for this long is closed and its call's media "
        "ends; keep it well above any pause the carrier may make (hold, mute).",
    )
    malformed_log_interval_s: float = Field(
        10.0, gt=0, description="At most one log line per call per interval for malformed frames."
    )
