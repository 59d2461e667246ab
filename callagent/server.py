"""The server as ``callagent serve`` runs it, built from settings: the one composition seam.

:func:`build_server` tunes the settings for the chosen providers, builds the providers
(STT, LLM, TTS, tools; in local mode the emulators too) and the aiohttp app with one call
agent per media stream. ``callagent serve``, ``callagent demo`` and the bench's engine
process all start their server through it, so what is benchmarked is what is served.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from aiohttp import web

from control_plane.app import METRICS_KEY, create_app
from control_plane.settings import Settings

from .wiring import Providers, agent_factory, build_providers, provider_names, tuned_for_providers


@dataclass(frozen=True, slots=True)
class Server:
    app: web.Application
    settings: Settings  # as tuned for the providers
    providers: Providers

    async def close(self) -> None:
        """Close the providers (the app's runner is the caller's: it owns the sockets)."""
        await self.providers.aclose()


async def build_server(settings: Settings, *, keep_turns: int = 0) -> Server:
    """The app ``callagent serve`` runs for ``settings``. ``keep_turns`` > 0 keeps that many of the
    engine's per-turn timelines in ``app[METRICS_KEY].recent_turns`` (benchmarks read them)."""
    settings = tuned_for_providers(settings)
    providers = await build_providers(settings)
    app = create_app(settings, listener_factory=agent_factory(settings, providers))
    app[METRICS_KEY].set_providers(**provider_names(settings))  # the TTFB series' provider label
    if keep_turns:
        app[METRICS_KEY].recent_turns = collections.deque(maxlen=keep_turns)
    return Server(app, settings, providers)
