"""How fast the emulated providers answer, and how they fail on purpose.

A :class:`LatencyProfile` holds the delays the three emulators add: STT final after
``Finalize``, LLM first token and token pace, TTS first audio and chunk pace, with a
seeded jitter. ``fast`` is the bench default (it keeps provider latency small and fixed
so the engine's own share stands out); ``realistic`` and ``slow`` approximate hosted
providers on a good and a bad day.

Faults are chosen per request, so a test or the bench can break exactly one call:

* header ``X-Emulator-Fault: <kind>`` or query parameter ``emulator_fault=<kind>`` on the
  request itself (the STT/TTS clients pass extra query parameters through their config,
  the OpenAI clients extra headers), or
* ``POST /_control/faults`` with ``{"kind": ..., "service": "stt"|"tts"|"llm"|"speech"|"*",
  "count": n}``: the next ``n`` requests to that service fail (``GET`` lists what is armed,
  ``DELETE`` disarms everything). In-process, :meth:`FaultSwitch.arm` does the same.

Kinds: ``slow`` (stall for ``stall_s``, past any sane client deadline), ``http_500``
(refuse the request/handshake), ``error_frame`` (a protocol error message mid-stream, then
close), ``disconnect`` (drop the TCP connection mid-stream, no close frame).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["slow", "http_500", "error_frame", "disconnect"]
Service = Literal["stt", "tts", "llm", "speech", "*"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
SERVICES: tuple[str, ...] = get_args(Service)
FAULT_HEADER = "X-Emulator-Fault"
FAULT_QUERY = "emulator_fault"


class LatencyProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    stt_final_ms: float = Field(100, ge=0, description="Final transcript after the client's Finalize.")
    stt_interim_every_ms: float = Field(
        # Deepgram documents no cadence; its own streaming example ("Using Interim Results") shows
        # results covering 0-1.1, 0-2.1, 0-3.1 s of audio, one a second, and a live Deepgram log in
        # pipecat-ai/pipecat#1261 shows one every ~0.99 s. 300 (this field's old default) made the
        # emulator's interims three times fresher than the service's.
        1000, gt=0, description="An interim result per this much of a segment's audio (Deepgram: ~1 s).")
    stt_endpoint_silence_ms: float = Field(500, gt=0, description="Own endpointing: trailing silence.")
    llm_first_token_ms: float = Field(150, ge=0)
    llm_token_interval_ms: float = Field(15, ge=0)
    tts_first_audio_ms: float = Field(100, ge=0, description="After the first complete sentence arrives.")
    tts_chunk_audio_ms: float = Field(200, gt=0, description="Audio per TTS frame.")
    tts_chunk_interval_ms: float = Field(40, ge=0, description="Pace of TTS frames (faster than real time).")
    jitter_ms: float = Field(0, ge=0, description="Each delay moves by up to ± this much (seeded).")
    seed: int = 0
    stall_s: float = Field(30.0, gt=0, description="How long a `slow` fault stalls.")


PROFILES: Mapping[str, LatencyProfile] = {
    "fast": LatencyProfile(name="fast"),
    "realistic": LatencyProfile(
        name="realistic", stt_final_ms=250, llm_first_token_ms=450, llm_token_interval_ms=25,
        tts_first_audio_ms=220, tts_chunk_interval_ms=100, jitter_ms=40,
    ),
    "slow": LatencyProfile(
        name="slow", stt_final_ms=600, llm_first_token_ms=1200, llm_token_interval_ms=50,
        tts_first_audio_ms=500, tts_chunk_interval_ms=160, jitter_ms=150,
    ),
}


def get_profile(profile: str | LatencyProfile) -> LatencyProfile:
    if isinstance(profile, LatencyProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown latency profile {profile!r}; known: {', '.join(PROFILES)}") from None


class Delays:
    """The profile's delays in seconds, with its seeded jitter applied."""

    def __init__(self, profile: LatencyProfile) -> None:
        self.profile = profile
        self._rng = random.Random(profile.seed)

    def __call__(self, ms: float) -> float:
        jitter = self.profile.jitter_ms
        if jitter:
            ms += self._rng.uniform(-jitter, jitter)
        return max(0.0, ms) / 1000.0


@dataclass
class _Armed:
    kind: str
    service: str
    count: int


class FaultSwitch:
    """Faults armed for the next requests, plus the per-request header/query override."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def arm(self, kind: str, service: str = "*", count: int = 1) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        self._armed.append(_Armed(kind, service, count))

    def clear(self) -> None:
        self._armed.clear()

    def armed(self) -> list[dict[str, object]]:
        return [{"kind": a.kind, "service": a.service, "count": a.count} for a in self._armed]

    def take(self, service: str, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The fault for this request, if any; an armed fault is used up by it."""
        kind = headers.get(FAULT_HEADER) or query.get(FAULT_QUERY)
        if kind:
            return kind if kind in FAULT_KINDS else None
        for armed in self._armed:
            if armed.service in (service, "*"):
                armed.count -= 1
                if armed.count <= 0:
                    self._armed.remove(armed)
                return armed.kind
        return None
