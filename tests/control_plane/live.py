"""A whole deployment in one process, for stream binding and recovery tests.

The Telnyx emulator (Call Control, signed webhooks, media streams) and the speech emulators
(STT, LLM, TTS) stand in for the providers; one or more control planes run the real app
with the real :class:`~engine.conversation.agent.CallAgent` per stream, wired as ``callagent
serve`` wires it. The LLM is wrapped to remember every conversation it was sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer, unused_port

from bench.corpus.model import CORPUS_DIR
from bench.emulators.server import load_corpus_utterances, start_emulators
from bench.telnyx_emulator import CalleeFactory, RunningEmulator, start_emulator
from callagent.wiring import Providers, agent_factory
from control_plane.app import CONTROL_PLANE_KEY, create_app
from control_plane.auth import issue_api_key
from control_plane.services import ControlPlane
from control_plane.settings import Settings
from engine.conversation.egress import ToolEgressConfig
from engine.conversation.phrases import PhraseCache
from engine.conversation.tools import ToolClient
from engine.providers.openai_chat import OpenAIChatConfig, OpenAIChatModel
from engine.providers.telnyx_stt import TelnyxSpeechToText, TelnyxSttConfig
from engine.providers.telnyx_tts import TelnyxTextToSpeech, TelnyxTtsConfig
from tests.fixtures import waiting

_UTTERANCES: list[tuple[str, bytes]] | None = None


class RecordingChat(OpenAIChatModel):
    """The real chat client, remembering each conversation it streams an answer to."""

    def __init__(self, config: OpenAIChatConfig) -> None:
        super().__init__(config)
        self.conversations: list[list[dict[str, Any]]] = []

    def stream(self, messages, *, tools=None):  # type: ignore[no-untyped-def]
        self.conversations.append([dict(m) for m in messages])
        return super().stream(messages, tools=tools)


@dataclass
class Server:
    """One control plane serving on its own port."""

    cp: ControlPlane
    server: TestServer
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class World:
    telnyx: RunningEmulator
    llm: RecordingChat
    providers: Providers
    headers: dict[str, str] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)

    async def start_call(self, server: Server, **body: Any) -> dict[str, Any]:
        request = {"to": "+14155550123", "from": "+14155550100",
                   "agent_config": {"personality": "friendly", "voice": "natural_hd", "language": "en",
                                    "first_message": "Hello there!"},
                   **body}
        async with aiohttp.ClientSession() as http, \
                http.post(f"{server.base}/api/calls/start", json=request, headers=self.headers) as response:
            assert response.status == 201, await response.text()
            return await response.json()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something true (a guard against hanging, not a timing assertion)."""
    return await waiting.eventually(check, timeout=timeout)


async def _hang_up_all(telnyx: RunningEmulator) -> None:
    live = [call for call in telnyx.calls.values() if call.hang_up()]
    for call in live:
        await call.wait_ended(timeout=5)


@asynccontextmanager
async def world(settings_for: Callable[..., Settings], *, servers: int = 1,
                callee_factory: CalleeFactory | None = None,
                tool_egress: ToolEgressConfig | None = None) -> AsyncIterator[World]:
    """``settings_for(**overrides)`` makes each server's settings (same store for all);
    ``tool_egress``: where the agents' HTTP tools may connect (default: public addresses only)."""
    global _UTTERANCES
    if _UTTERANCES is None:
        _UTTERANCES = load_corpus_utterances(CORPUS_DIR)
    async with AsyncExitStack() as stack:
        speech = await start_emulators("fast", known_utterances=_UTTERANCES)
        stack.push_async_callback(speech.close)
        telnyx = await start_emulator(callee_factory=callee_factory)
        stack.push_async_callback(telnyx.close)
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        stack.push_async_callback(http.close)
        key = speech.api_key
        from pydantic import SecretStr

        secret = SecretStr(key)
        llm = RecordingChat(OpenAIChatConfig(api_key=secret, base_url=speech.llm_base_url, model="emulator"))
        stack.push_async_callback(llm.aclose)
        tts = TelnyxTextToSpeech(TelnyxTtsConfig(api_key=secret, url=speech.tts_url), session=http)
        tools = ToolClient(tool_egress)
        stack.push_async_callback(tools.aclose)
        phrases = PhraseCache(tts)
        stack.push_async_callback(phrases.aclose)  # (before the session its syntheses use closes)
        providers = Providers(
            stt=TelnyxSpeechToText(TelnyxSttConfig(api_key=secret, url=speech.stt_url), session=http),
            llm=llm, tts=tts, phrases=phrases, http=http, tools=tools,
        )
        w = World(telnyx=telnyx, llm=llm, providers=providers)
        for _ in range(servers):
            port = unused_port()
            settings = settings_for(
                telnyx_api_key=telnyx.api_key, telnyx_api_base=telnyx.base_url,
                telnyx_public_key=telnyx.public_key_b64, server={"public_url": f"http://127.0.0.1:{port}"},
                webhooks={"poll_interval_s": 0.05},
            )
            app = create_app(settings, listener_factory=agent_factory(settings, providers))
            server = TestServer(app, port=port)
            await server.start_server()
            stack.push_async_callback(server.close)
            w.servers.append(Server(cp=app[CONTROL_PLANE_KEY], server=server, port=port))
        stack.push_async_callback(_hang_up_all, telnyx)  # first: open sockets would hold the servers' close
        repo = await w.servers[0].cp.repository()
        org = await repo.create_organisation("live")
        _, api_key = await issue_api_key(repo, org.id, "live")
        w.headers = {"Authorization": f"Bearer {api_key}"}
        yield w
