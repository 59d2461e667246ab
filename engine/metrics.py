"""Prometheus exposition for the engine.

The per-frame path only bumps plain integers on each session; :class:`EngineCollector`
sums them at scrape time over the live sessions plus the totals left by ended ones.
Turn latencies are observed once per turn into histograms labelled by stage, and each
provider's time to first byte (STT final, LLM first token, TTS first audio) by provider.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .session import MediaSession
from .timeline import TurnTimeline
from .turn_outcome import Hold, TurnEnd

# Counter name -> (help, how to read it off a session)
_COUNTERS: dict[str, tuple[str, str]] = {
    "frames_in": ("Inbound media frames received", "stats.frames_in"),
    "frames_out": ("Outbound media frames sent", "playout.frames_sent"),
    "late_outbound_frames": ("Outbound frames sent after their play slot", "playout.late_frames"),
    "concealed_frames": ("Inbound frames concealed by the jitter buffer", "jitter.stats.concealed"),
    "late_inbound_frames": ("Inbound frames dropped for arriving after their slot", "jitter.stats.late"),
    "duplicate_inbound_frames": ("Inbound frames dropped as duplicates", "jitter.stats.duplicate"),
    "malformed_frames": ("Malformed media-stream frames dropped", "stats.malformed"),
    "barge_ins": ("Caller barge-ins that stopped agent audio", "stats.barge_ins"),
    "rejected_barge_ins": ("Short caller sounds that did not interrupt the agent", "stats.rejected_barge_ins"),
    "reply_start_holds": (
        "Replies held at their first frame because the caller had just begun to make a sound",
        "stats.reply_start_holds",
    ),
    "dtmf_digits": ("DTMF digits received on media streams", "stats.dtmf"),
    "mark_echoes_overdue": (
        "Agent utterances taken as played because the carrier's mark echo was overdue",
        "stats.mark_echoes_overdue",
    ),
    "mark_echoes_late": (
        "Mark echoes that came after their utterance had been taken as played", "stats.mark_echoes_late",
    ),
}


def _read(session: MediaSession, path: str) -> int:
    value: Any = session
    for part in path.split("."):
        value = getattr(value, part)
    return int(value)


class SessionRegistry:
    """The live media sessions of this process, and what ended ones counted."""

    def __init__(self) -> None:
        self.live: set[MediaSession] = set()
        self.ended_totals: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self.sessions_total = 0

    def add(self, session: MediaSession) -> None:
        self.live.add(session)
        self.sessions_total += 1

    def remove(self, session: MediaSession) -> None:
        if session in self.live:
            self.live.discard(session)
            for name, (_, path) in _COUNTERS.items():
                self.ended_totals[name] += _read(session, path)

    def totals(self) -> dict[str, int]:
        out = dict(self.ended_totals)
        for session in self.live:
            for name, (_, path) in _COUNTERS.items():
                out[name] += _read(session, path)
        return out


class EngineCollector(Collector):
    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        totals = self._registry.totals()
        for name, (doc, _) in _COUNTERS.items():
            family = CounterMetricFamily(f"callagent_{name}", doc)
            family.add_metric([], totals[name])
            yield family
        streams = GaugeMetricFamily("callagent_active_streams", "Media streams currently open")
        streams.add_metric([], len(self._registry.live))
        yield streams
        total = CounterMetricFamily("callagent_streams", "Media streams accepted")
        total.add_metric([], self._registry.sessions_total)
        yield total


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0)


class EngineMetrics:
    """Everything the engine exports, on one registry (the app serves it on /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, keep_turns: int = 0) -> None:
        self.registry = registry or CollectorRegistry()
        self.sessions = SessionRegistry()
        self.recent_turns: collections.deque[dict[str, object]] = collections.deque(maxlen=keep_turns)
        """The last ``keep_turns`` measured turns, in full (for the bench; empty by default)."""
        self.unmeasured_turns: collections.deque[dict[str, object]] = collections.deque(maxlen=100_000)
        """While turns are kept: the turns the agent answered that were not measured (the reply's
        first frame went out once the caller had begun again, or while the VAD still heard them: a
        noise or recogniser end), with their outcome, at their stream's end. Not in any figure: the
        bench reads how they ended."""
        self.registry.register(EngineCollector(self.sessions))
        self.turn_latency = Histogram(
            "callagent_turn_latency_seconds",
            "Caller's last voiced frame to first agent frame sent",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.engine_added = Histogram(
            "callagent_engine_added_seconds",
            "Part of the turn latency spent in the engine itself",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
            registry=self.registry,
        )
        self.stage_latency = Histogram(
            "callagent_turn_stage_seconds",
            "Per-stage share of each turn",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.provider_ttfb = Histogram(
            "callagent_provider_ttfb_seconds",
            "Provider time to first byte per turn: STT final after the turn's end, LLM first token, TTS first audio",
            ["kind", "provider"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "callagent_provider_errors",
            "Provider failures seen by calls (connection, error frame or status, deadline), by provider",
            ["provider"],
            registry=self.registry,
        )
        ends = Counter(
            "callagent_turn_ends",
            "Measured turns by how they ended (end) and, for a hold that ran out, its verdict (hold)",
            ["end", "hold"],
            registry=self.registry,
        )
        # Bound now, so a turn does no label lookup; a hold only ever ends as hold_ran_out.
        self._ends = {(end, hold): ends.labels(end.value, hold.value if hold else "")
                      for end in TurnEnd for hold in ((None, *Hold) if end is TurnEnd.HOLD_RAN_OUT else (None,))}
        openings = Counter(
            "callagent_turn_openings",
            "Measured turns by where the reply's first audio came from: the TTS, or a kept recording of an "
            "opening the agent had said before (engine/conversation/openers.py)",
            ["source"],
            registry=self.registry,
        )
        self._opened_by_tts, self._opened_kept = openings.labels("tts"), openings.labels("kept")
        self._ttfb: tuple[tuple[str, Histogram], ...] = ()
        self.set_providers()

    def set_providers(self, *, stt: str = "stt", llm: str = "llm", tts: str = "tts") -> None:
        """Name the process's providers (``telnyx-stt``, ``openai-chat``...): the provider label of
        the TTFB series. Children are bound here so a turn does no label lookup; the placeholder
        names' empty series go."""
        self.provider_ttfb.clear()
        self._ttfb = tuple(
            (stage, self.provider_ttfb.labels(kind, name))
            for stage, kind, name in (("stt", "stt", stt), ("llm_first_token", "llm", llm),
                                      ("tts_first_audio", "tts", tts))
        )

    def provider_error(self, provider: str) -> None:
        """Count one provider failure (rare: a label lookup is fine here)."""
        self.provider_errors.labels(provider).inc()

    def observe_turn(self, timeline: TurnTimeline, stream_id: str | None = None) -> None:
        """A turn's first reply frame went out: its figures, and how it ended (when the turn
        policy said). ``stream_id`` tells the bench's kept turns apart by call."""
        if self.recent_turns.maxlen:
            self.recent_turns.append({**timeline.as_dict(), "stream_id": stream_id})
        outcome = timeline.outcome
        if outcome is not None:
            ends = self._ends.get((outcome.end, outcome.hold))
            if ends is not None:
                ends.inc()
        if timeline.tts_first_audio is not None:
            # A kept opening asks the TTS nothing (Reply._say_kept clears the request stamp).
            (self._opened_by_tts if timeline.tts_request is not None else self._opened_kept).inc()
        latency = timeline.turn_latency_ms
        if latency is not None:
            self.turn_latency.observe(latency / 1000.0)
        added = timeline.engine_added_ms
        if added is not None:
            self.engine_added.observe(added / 1000.0)
        stages = timeline.stages_ms()
        for stage, ms in stages.items():
            self.stage_latency.labels(stage).observe(ms / 1000.0)
        for stage, child in self._ttfb:
            stage_ms = stages.get(stage)
            if stage_ms is not None:
                child.observe(stage_ms / 1000.0)

    def stream_ended(self, turns: Iterable[TurnTimeline], stream_id: str | None) -> None:
        """A stream's session closed: keep its committed turns that were not measured (once a call)."""
        if self.recent_turns.maxlen:
            self.unmeasured_turns.extend({**t.as_dict(), "stream_id": stream_id} for t in turns
                                         if t.first_frame_sent is None and t.outcome is not None)

    def counter_names(self) -> Iterable[str]:
        return _COUNTERS.keys()
