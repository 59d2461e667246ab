"""What each Telnyx STT engine does over the WebSocket, as data (docs/telnyx-protocol.md §4.1).

The client decides from this table whether a ``Finalize`` is worth sending, the agent how
long a final may lag behind the caller's end of turn, and the STT emulator how to behave
for a connection's ``transcription_engine``. Facts marked [V] come from Telnyx's STT
WebSocket pages (developers.telnyx.com/docs/voice/stt/websocket-streaming/...): "responses"
(control messages and response fields), "parameters/interim-results", "parameters/endpointing",
"parameters/engines-and-models", and the engines' "Latency" column on /docs/voice/stt/models.
Figures marked [INF] are not published anywhere we found: they are our assumption, chosen
on the slow side so that the agent is tested against a late final, never an early one.
"""

from __future__ import annotations

from dataclasses import dataclass

FINAL_WAIT_MARGIN_MS = 500
"""Slack on top of an engine's usual final lag before the agent stops waiting for a final."""


@dataclass(frozen=True, slots=True)
class SttEngine:
    name: str
    """``transcription_engine`` as Telnyx spells it."""
    default_model: str | None
    finalize: bool
    """``{"type":"Finalize"}`` flushes and forces a final."""
    keepalive: bool
    close_stream: bool
    """``{"type":"CloseStream"}`` ends the stream gracefully (pending finals delivered)."""
    interim_results: bool
    """``interim_results=true`` gives partial transcripts; otherwise finals only."""
    speech_final: bool
    """Results carry ``speech_final`` (and ``utterance_end`` frames are sent)."""
    punctuation: bool | None
    """Whether finals come punctuated (None: not documented, do not count on it)."""
    silence_window_ms: int
    """Trailing silence after which the engine sends a final on its own."""
    final_lag_ms: int
    """Usual lag of that final after the end of speech: the window plus processing."""

    @property
    def final_wait_s(self) -> float:
        """How long the agent waits after its own end of turn for a final it cannot force."""
        return (self.final_lag_ms + FINAL_WAIT_MARGIN_MS) / 1000


ENGINES: dict[str, SttEngine] = {
    engine.name.lower(): engine
    for engine in (
        SttEngine(
            "Deepgram", "nova-3",  # default engine and model [V engines-and-models]
            finalize=True, keepalive=True, close_stream=True,  # [V responses: control messages]
            interim_results=True,  # [V interim-results]
            speech_final=True,  # speech_final, utterance_end: "Deepgram" [V responses]
            punctuation=True,  # every response example is punctuated [V responses]; nova-3 formats [V models]
            # endpointing default 100 ms [V endpointing]; "Latency: Low" [V models]; +100 ms processing [INF]
            silence_window_ms=100, final_lag_ms=200,
        ),
        SttEngine(
            "Telnyx", "openai/whisper-tiny",  # [V engines-and-models]
            finalize=False, keepalive=False,  # "Deepgram only" [V responses]
            close_stream=False,  # "Deepgram, Speechmatics, Soniox" [V responses] (another page says all)
            interim_results=False,  # "other engines ignore this parameter" [V interim-results]
            speech_final=False,  # [V responses]
            punctuation=True,  # Whisper writes punctuated, cased text [INF from the model, not from Telnyx]
            # Ignores `endpointing` [V]. Whisper decodes a closed segment, not a stream: a voice
            # activity window then a whole-segment decode [INF]; "Latency: Low" for tiny [V models].
            silence_window_ms=700, final_lag_ms=1000,
        ),
        SttEngine(
            "Google", "latest_long",  # [V engines-and-models]
            finalize=False, keepalive=False, close_stream=False,  # [V responses]
            interim_results=False,  # [V interim-results]
            speech_final=False,  # [V responses]
            punctuation=None,  # not documented for this engine
            # "Latency: Medium" [V models]; the endpointing page lists Google in one version and not
            # in another [V, conflicting]: streaming decode, so a shorter tail than Whisper [INF].
            silence_window_ms=500, final_lag_ms=800,
        ),
        SttEngine(
            "Speechmatics", None, finalize=False, keepalive=False, close_stream=True,  # [V responses]
            interim_results=True, speech_final=False, punctuation=None,  # [V interim-results, responses]
            silence_window_ms=500, final_lag_ms=800,  # [INF]
        ),
        SttEngine(
            "Soniox", None, finalize=False, keepalive=False, close_stream=True,  # [V responses]
            interim_results=True, speech_final=False, punctuation=None,  # [V interim-results, responses]
            # endpointing maps to max_endpoint_delay_ms, 500-3000 ms, off unless set [V endpointing]
            silence_window_ms=1000, final_lag_ms=1300,  # [INF]
        ),
    )
}

UNKNOWN = SttEngine(
    "unknown", None, finalize=False, keepalive=False, close_stream=False, interim_results=False,
    speech_final=False, punctuation=None, silence_window_ms=1000, final_lag_ms=1500,
)
"""Any other engine (Azure, xAI, AssemblyAI, ...): assume nothing beyond finals on its own time."""


def stt_engine(name: str) -> SttEngine:
    """The table entry for a ``transcription_engine`` (case-insensitive); :data:`UNKNOWN` otherwise."""
    return ENGINES.get(name.lower(), UNKNOWN)
