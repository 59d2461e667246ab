"""The composition root: build provider clients from settings and agents for streams.

Local mode is the one seam where the bench's emulators enter a running server: with no
Telnyx credentials, ``callagent serve`` starts them in-process and points the real
clients at them (and says so loudly).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from control_plane.app import CONTROL_PLANE_KEY
from control_plane.pipeline import CallPorts
from control_plane.settings import Settings
from engine.conversation.agent import CallAgent
from engine.conversation.config import AgentProfile, load_personalities, resolve
from engine.conversation.phrases import PhraseCache
from engine.conversation.ports import CallReporter
from engine.providers.base import ChatModel, SpeechToText, TextToSpeech
from engine.providers.openai_chat import OpenAIChatConfig, OpenAIChatModel
from engine.providers.openai_tts import OpenAITextToSpeech, OpenAITtsConfig
from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig
from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig
from engine.session import MediaListener

log = logging.getLogger(__name__)


@dataclass
class Providers:
    stt: SpeechToText
    llm: ChatModel
    tts: TextToSpeech
    phrases: PhraseCache
    http: aiohttp.ClientSession
    local: Any = None
    """The running local emulators, in local mode."""
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self._closers):
            try:
                await close()
            except Exception:  # closing must not mask the shutdown
                log.exception("closing a provider failed")


def is_local(settings: Settings) -> bool:
    mode = settings.providers.mode
    return mode == "local" or (mode == "auto" and settings.telnyx_api_key is None)


async def build_providers(settings: Settings) -> Providers:
    cfg = settings.providers
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    closers: list[Callable[[], Awaitable[Any]]] = [http.close]
    local = None
    if is_local(settings):
        from bench.corpus.model import CORPUS_DIR
        from bench.emulators.server import load_corpus_utterances, start_emulators

        known = load_corpus_utterances(CORPUS_DIR) if CORPUS_DIR.is_dir() else None
        local = await start_emulators(cfg.local_profile, known_utterances=known)
        closers.append(local.close)
        key = SecretStr(local.api_key)
        stt_url, tts_url, llm_url, llm_key = local.stt_url, local.tts_url, local.llm_base_url, key
        log.warning(
            "LOCAL MODE: no Telnyx credentials configured; speech, language model and TTS are the "
            "bundled emulators (profile %r) at %s. Set TELNYX_API_KEY to use the real services.",
            cfg.local_profile, local.llm_base_url.rsplit("/", 1)[0],
        )
    else:
        key = settings.telnyx_api_key  # type: ignore[assignment]
        stt_url, tts_url, llm_url = cfg.stt_url, cfg.tts_url, cfg.llm_base_url
        llm_key = cfg.llm_api_key or key
    stt = TelnyxSpeechToText(
        TelnyxSttConfig(api_key=key, url=stt_url, transcription_engine=cfg.stt_engine, model=cfg.stt_model,
                        language=cfg.stt_language),
        session=http,
    )
    llm = OpenAIChatModel(OpenAIChatConfig(
        api_key=llm_key, base_url=llm_url, model=cfg.llm_model if local is None else "emulator",
        temperature=cfg.llm_temperature, max_tokens=cfg.llm_max_tokens,
    ))
    closers.append(llm.aclose)
    tts: TextToSpeech
    if cfg.tts == "openai" and local is None:
        if cfg.openai_api_key is None:
            raise ValueError("providers.tts=openai needs providers.openai_api_key")
        tts = OpenAITextToSpeech(OpenAITtsConfig(api_key=cfg.openai_api_key, base_url=cfg.openai_base_url))
    else:
        tts = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=key, url=tts_url), session=http)
    return Providers(stt=stt, llm=llm, tts=tts, phrases=PhraseCache(tts), http=http, local=local, _closers=closers)


def default_profile(settings: Settings) -> AgentProfile:
    return resolve(settings.agent, load_personalities(settings.personalities_file))


def agent_factory(
    settings: Settings, providers: Providers, *, reporter: CallReporter | None = None,
    profile: AgentProfile | None = None,
) -> Callable[[web.Request], MediaListener]:
    """One :class:`CallAgent` per media stream, with the default agent configuration."""
    profile = profile or default_profile(settings)

    def create(request: web.Request) -> MediaListener:
        cp = request.app.get(CONTROL_PLANE_KEY)
        return CallAgent(
            profile, stt=providers.stt, llm=providers.llm, tts=providers.tts,
            phrases=providers.phrases, http=providers.http, reporter=reporter,
            # An explicit reporter (the demo's console) keeps the default agent; otherwise the
            # control plane says which call a stream belongs to and takes its records.
            setup=CallPorts(cp).setup if cp is not None and reporter is None else None,
        )

    return create
