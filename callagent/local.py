"""Local mode: a Telnyx that runs in this process.

With no Telnyx credentials, ``callagent serve`` and ``callagent demo`` start the bundled
Telnyx emulator (Call Control REST, signed webhooks, media streams) and point the real
Call Control client at it, next to the provider emulators. The simulated callee plays
calls from the recorded-call corpus. With credentials, none of this runs.
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from control_plane.settings import Settings

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def start_local_carrier(
    settings: Settings, port: int, *, on_result: Callable[[Any, Any], None] | None = None,
    script: str | None = None, reply_idle_s: float | None = None,
) -> tuple[Settings, Any]:
    """Start the Telnyx emulator for a server on ``port``; returns the settings that point at it.
    ``reply_idle_s``: how long the simulated callee waits in silence for the agent's reply."""
    from bench.callee import REPLY_IDLE_S, EmulatorCallee
    from bench.corpus.model import load_corpus
    from bench.telnyx_emulator import start_emulator

    corpus = [s for s in load_corpus() if s.answer == "human"]
    if script is not None:
        corpus = [s for s in corpus if s.name == script] or corpus
    scripts = itertools.cycle(corpus)
    base = f"http://127.0.0.1:{port}"
    emulator = await start_emulator(
        webhook_url=f"{base}/webhook/telnyx",
        callee_factory=EmulatorCallee(lambda call: next(scripts), on_result,
                                      reply_idle_s=REPLY_IDLE_S if reply_idle_s is None else reply_idle_s),
    )
    local = settings.model_copy(update={
        "telnyx_api_key": SecretStr(emulator.api_key),
        "telnyx_api_base": emulator.base_url,
        "telnyx_public_key": emulator.public_key_b64,
        "telnyx_connection_id": settings.telnyx_connection_id or "local-connection",
        "server": settings.server.model_copy(update={"public_url": base, "port": port}),
        "providers": settings.providers.model_copy(update={"mode": "local"}),
    })
    log.warning(
        "LOCAL MODE: no Telnyx credentials configured; Call Control, webhooks and media streams go to the "
        "bundled Telnyx emulator at %s, whose callee plays recorded corpus calls. Set TELNYX_API_KEY to "
        "talk to Telnyx.", emulator.base_url,
    )
    return local, emulator
