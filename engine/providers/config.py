"""Which providers a deployment talks to, as one settings block.

``mode``: ``remote`` uses the real services (Telnyx STT/TTS WebSockets and an
OpenAI-compatible LLM); ``local`` starts the bundled emulators in-process and points
the same clients at them; ``auto`` (the default) is ``remote`` when a Telnyx API key
is configured and ``local`` otherwise.
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

    stt_url: str = TELNYX_STT_URL
    stt_engine: str = Field("Telnyx", description="Telnyx transcription_engine (Telnyx, Deepgram, Google, ...).")
    stt_model: str | None = None
    stt_language: str = "en"

    tts: Literal["telnyx", "openai"] = "telnyx"
    tts_url: str = TELNYX_TTS_URL

    llm_base_url: str = Field("https://api.telnyx.com/v2/ai/openai", description="Any OpenAI-compatible API.")
    llm_model: str = "moonshotai/Kimi-K2.5"
    llm_api_key: SecretStr | None = Field(None, description="Defaults to the Telnyx API key.")
    llm_temperature: float | None = Field(0.4, ge=0, le=2)
    llm_max_tokens: int | None = Field(200, gt=0)

    openai_api_key: SecretStr | None = Field(None, description="For tts=openai.")
    openai_base_url: str = "https://api.openai.com/v1"
