"""Which providers a deployment talks to, as one settings block.

``mode``: ``remote`` uses the real services (Telnyx STT/TTS WebSockets and an
OpenAI-compatible LLM); ``local`` starts the bundled emulators in-process and points
the same clients at them; ``auto`` (the default) is ``remote`` when a Telnyx API key
is configured and ``local`` otherwise.

``stt``, ``tts`` and ``llm`` name providers: the built-ins (stt: telnyx, deepgram, whisper;
tts: telnyx, openai, piper, espeak; llm: openai) and any installed plugin's, all found
through the ``callagent.providers`` entry points (:mod:`.registry`). A provider's own
settings block is ``options.<name>`` (Deepgram's: ``options.deepgram.api_key``, ...).

``stt=whisper`` and ``tts=piper`` / ``tts=espeak`` run offline speech models in this
process instead (the optional ``[local-ai]`` extra; espeak-ng is a system program), in
either mode: in local mode they replace the emulated STT/TTS. The LLM in local mode is the
chat emulator, unless ``llm_api_key`` is set: a real model needs no Telnyx key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .telnyx_stt import DEFAULT_URL as TELNYX_STT_URL
from .telnyx_tts import DEFAULT_URL as TELNYX_TTS_URL

_PROVIDER_NAME = r"^[a-z][a-z0-9_-]{0,39}$"


class ProvidersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["auto", "remote", "local"] = "auto"
    local_profile: str = Field("fast", description="Latency profile of the local emulators.")

    stt: str = Field("telnyx", pattern=_PROVIDER_NAME, description="STT provider: telnyx, deepgram, whisper, "
                     "or an installed plugin's (callagent.providers entry point stt.<name>).")
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

    tts: str = Field("telnyx", pattern=_PROVIDER_NAME,
                     description="TTS provider: telnyx, openai, piper, espeak, or an installed plugin's.")
    tts_url: str = TELNYX_TTS_URL
    tts_audio_format: Literal["linear16", "pcm", "wav", "mp3"] = Field(
        "linear16", description="audio_format asked of Telnyx TTS: linear16 (+ sample_rate) per the voices' pages, "
        "or pcm/wav/mp3 per the SDK. What arrives is checked, decoded (MP3) and resampled either way.")
    espeak_voice: str = Field("en-us", description="espeak-ng voice for tts=espeak (and its default voice).")
    tts_extra_voices: tuple[str, ...] = Field(
        (), max_length=100,
        description="More agent voices to accept, as exact names or prefixes ending in * (e.g. AWS.Polly.*): "
                    "voices this deployment has checked stream linear16, or a compatible server's own voices "
                    "(tts=openai). Natural and NaturalHD voices are always accepted.",
    )

    llm: str = Field("openai", pattern=_PROVIDER_NAME,
                     description="LLM provider: openai (any OpenAI-compatible API) or an installed plugin's.")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, repr=False,  # (API keys live here: never in a printed settings object)
        description="Each provider's own settings block, by provider name "
        "(CALLAGENT_PROVIDERS__OPTIONS__DEEPGRAM__API_KEY=...); validated by the provider, secrets as SecretStr.")

    llm_base_url: str = Field("https://api.telnyx.com/v2/ai/openai", description="Any OpenAI-compatible API.")
    llm_model: str = "moonshotai/Kimi-K2.5"
    llm_api_key: SecretStr | None = Field(
        None, description="The LLM's key; the Telnyx key stands in only for Telnyx's own inference API. In local "
                          "mode (no Telnyx key) setting it makes the real model answer the emulated callers.")
    llm_temperature: float | None = Field(0.4, ge=0, le=2, description="`none`: not sent (OpenAI reasoning models).")
    llm_max_tokens: int | None = Field(200, gt=0, description="Reply length cap; `none`: not sent.")
    llm_max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens",
        description="The name llm_max_tokens is sent under: OpenAI's reasoning models (o-series, gpt-5) "
                    "refuse max_tokens and take max_completion_tokens; most compatible servers take max_tokens.",
    )
    llm_reasoning_effort: str | None = Field(
        None, pattern=r"^[a-z]{1,16}$",
        description="Sent as reasoning_effort when set (e.g. minimal or low: a reasoning model's first "
                    "token comes sooner); unset: not sent.",
    )

    openai_api_key: SecretStr | None = Field(None, description="For tts=openai.")
    openai_base_url: str = "https://api.openai.com/v1"

    @field_validator("llm_temperature", "llm_max_tokens", "llm_reasoning_effort", mode="before")
    @classmethod
    def _none_leaves_it_out(cls, value: object) -> object:
        # An environment variable cannot be null: `none` (or empty) says "do not send it".
        if isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
            return None
        return value
