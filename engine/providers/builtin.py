"""The factories of the built-in providers, declared as ``callagent.providers`` entry points in
the project's pyproject.toml like any plugin's (see :mod:`.registry`).

The Telnyx and OpenAI-compatible ones keep their settings in the flat ``providers.*`` fields
they always had; newer ones (Deepgram) take their own block, ``providers.options.<name>``.
In local mode a provider with an emulator (``context.local_endpoints``) talks to it; the
offline models (Whisper, piper, espeak-ng) run in-process in either mode.
"""

from __future__ import annotations

from pydantic import SecretStr

from .base import ChatModel, SpeechToText, TextToSpeech
from .config import ProvidersConfig
from .deepgram_stt import DeepgramOptions, DeepgramSpeechToText
from .espeak_tts import EspeakTextToSpeech, EspeakTtsConfig
from .openai_chat import OpenAIChatConfig, OpenAIChatModel
from .openai_tts import OpenAITextToSpeech, OpenAITtsConfig
from .piper_tts import PiperTextToSpeech
from .registry import ProviderContext
from .telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig
from .telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig
from .voices import catalogue_for
from .whisper_stt import WhisperSpeechToText, WhisperSttConfig

TELNYX_LLM_URL = "https://api.telnyx.com/v2/ai/openai"


def _telnyx_key(context: ProviderContext) -> SecretStr:
    if context.local:
        assert context.local_api_key is not None
        return context.local_api_key
    return context.require(context.telnyx_api_key, "TELNYX_API_KEY")


def telnyx_stt(context: ProviderContext) -> SpeechToText:
    cfg = context.providers
    url = context.local_endpoints.get("stt.telnyx", cfg.stt_url)
    return TelnyxSpeechToText(
        TelnyxSttConfig(api_key=_telnyx_key(context), url=url, transcription_engine=cfg.stt_engine,
                        model=cfg.stt_model, language=cfg.stt_language, interim_results=cfg.stt_interim_results),
        session=context.http,
    )


def whisper_stt(context: ProviderContext) -> SpeechToText:
    cfg = context.providers
    return WhisperSpeechToText(WhisperSttConfig(language=cfg.stt_language, cpu_threads=cfg.whisper_threads))


def deepgram_stt(context: ProviderContext) -> SpeechToText:
    options = context.options_as(DeepgramOptions)
    url = context.local_endpoints.get("stt.deepgram")
    if url is not None:  # local mode: the emulator, with the emulators' key
        assert context.local_api_key is not None
        options = options.model_copy(update={"url": url, "api_key": context.local_api_key})
    else:
        context.require(options.api_key, "CALLAGENT_PROVIDERS__OPTIONS__DEEPGRAM__API_KEY")
    if "language" not in context.options:
        options = options.model_copy(update={"language": context.providers.stt_language})
    return DeepgramSpeechToText(options, session=context.http)


def telnyx_tts(context: ProviderContext) -> TextToSpeech:
    cfg = context.providers
    url = context.local_endpoints.get("tts.telnyx", cfg.tts_url)
    return TelnyxTextToSpeech(TelnyxTtsConfig(api_key=_telnyx_key(context), url=url,
                                              audio_format=cfg.tts_audio_format), session=context.http)


def openai_tts(context: ProviderContext) -> TextToSpeech:
    if context.local:  # the TTS emulator stands in (it takes the same voices)
        return telnyx_tts(context)
    cfg = context.providers
    key = context.require(cfg.openai_api_key, "CALLAGENT_PROVIDERS__OPENAI_API_KEY")
    return OpenAITextToSpeech(OpenAITtsConfig(api_key=key, base_url=cfg.openai_base_url), voices=catalogue_for(cfg))


def piper_tts(context: ProviderContext) -> TextToSpeech:
    return PiperTextToSpeech()


def espeak_tts(context: ProviderContext) -> TextToSpeech:
    return EspeakTextToSpeech(EspeakTtsConfig(voice=context.providers.espeak_voice))


def openai_llm(context: ProviderContext) -> ChatModel:
    """Any OpenAI-compatible chat API. Its key is ``llm_api_key``; the Telnyx key stands in only
    for Telnyx's own inference API. In local mode the chat emulator answers, unless an
    ``llm_api_key`` is set: then the real model talks to the emulated callers."""
    cfg = context.providers
    emulator = context.local_endpoints.get("llm.openai")
    if emulator is not None and cfg.llm_api_key is None:
        assert context.local_api_key is not None
        return OpenAIChatModel(chat_config(cfg, api_key=context.local_api_key, base_url=emulator, model="emulator"),
                               session=context.http)
    key = cfg.llm_api_key
    if key is None and cfg.llm_base_url.rstrip("/") == TELNYX_LLM_URL and not context.local:
        key = context.telnyx_api_key
    key = context.require(key, "CALLAGENT_PROVIDERS__LLM_API_KEY")
    return OpenAIChatModel(chat_config(cfg, api_key=key, base_url=cfg.llm_base_url, model=cfg.llm_model),
                           session=context.http)


def chat_config(cfg: ProvidersConfig, *, api_key: SecretStr, base_url: str, model: str) -> OpenAIChatConfig:
    """The LLM client's settings: only the sampling options the deployment set are sent."""
    return OpenAIChatConfig(
        api_key=api_key, base_url=base_url, model=model, temperature=cfg.llm_temperature,
        max_tokens=cfg.llm_max_tokens, max_tokens_param=cfg.llm_max_tokens_param,
        reasoning_effort=cfg.llm_reasoning_effort,
    )
