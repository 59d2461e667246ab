"""Which providers a deployment talks to, as one settings block.

``mode``: ``remote`` uses the real services (Telnyx STT/TTS WebSockets and an
OpenAI-compatible LLM); ``local`` starts the bundled emulators in-process and points
the same clients at them; ``auto`` (the default) is ``remote`` when a Telnyx API key
is configured and ``local`` otherwise.

``stt=whisper`` and ``tts=piper`` / ``tts=espeak`` run offline speech models in this
process instead (the optional ``[local-ai]`` extra; espeak-ng is a system program), in
either mode: in local mode they replace the emulated STT/TTS, and the LLM stays the
chat emulator (there is no offline LLM).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .telnyx_stt import DEFAULT_URL as TELNYX_STT_URL
from .telnyx_tts import DEFAULT_URL as TELNYX_TTS_URL


class ProvidersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["auto", "remote", "local"] = "auto"
    local_profile: str = Field("fast", description="Latency profile of the local emulators.")

    stt: Literal["telnyx", "whisper"] = "telnyx"
    stt_url: str = TELNYX_STT_URL
    stt_engine: str = Field(
        "Deepgram", description="Telnyx transcription_engine (Deepgram, Telnyx, Google, ...). Deepgram is the one "
        "with Finalize and interim results, which the latency plan relies on (see stt_engines.py).")
    stt_model: str | None = Field(None, description="None: the engine's default (Deepgram: nova-3).")
    stt_interim_results: bool = Field(True, description="Ask for partial transcripts (engines without them ignore it).")
    stt_final_wait_ms: int | None = Field(
        None, gt=0, le=10_000, description="How long the agent waits after the caller's end of turn for a final "
        "transcript. None: 800 ms for engines that finalize on request, else the engine's usual lag plus a margin.")
    stt_language: str = Field("en", description="Also Whisper's language (the bundled model is tiny.en).")
    whisper_threads: int = Field(1, ge=1, le=64, description="CPU threads per Whisper transcription.")

    tts: Literal["telnyx", "openai", "piper", "espeak"] = "telnyx"
    tts_url: str = TELNYX_TTS_URL
    espeak_voice: str = Field("en-us", description="espeak-ng voice for tts=espeak.")

    llm_base_url: str = Field("https://api.telnyx.com/v2/ai/openai", description="Any OpenAI-compatible API.")
    llm_model: str = "moonshotai/Kimi-K2.5"
    llm_api_key: SecretStr | None = Field(None, description="Defaults to the Telnyx API key.")
    llm_temperature: float | None = Field(0.4, ge=0, le=2)
    llm_max_tokens: int | None = Field(200, gt=0)

    openai_api_key: SecretStr | None = Field(None, description="For tts=openai.")
    openai_base_url: str = "https://api.openai.com/v1"
