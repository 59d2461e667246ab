"""Local emulators of the provider wire protocols the engine's clients speak.

* :mod:`.stt` — Telnyx real-time STT WebSocket (recognises registered utterances by audio).
* :mod:`.deepgram` — Deepgram's live streaming STT WebSocket (the same recogniser).
* :mod:`.tts` — Telnyx TTS WebSocket (espeak-ng speech, or a tone when it is missing).
* :mod:`.llm` — OpenAI-compatible chat completions (scripted answers, tool calls, JSON
  schema output) and ``/v1/audio/speech``.
* :mod:`.server` — all of them on one aiohttp app: :func:`start_emulators` in-process, or
  ``python -m bench.emulators.server`` as a separate process.
* :mod:`.profiles` — latency profiles and the fault switch (how to break one call).

The real clients in :mod:`engine.providers` talk to these over real sockets.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web


def bearer_ok(request: web.Request, api_key: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def drop_connection(request: web.Request) -> None:
    """Cut the TCP connection without a close frame or a final chunk (the `disconnect` fault)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def __getattr__(name: str) -> Any:  # lazy: `from bench.emulators import start_emulators`
    if name in ("start_emulators", "RunningEmulators"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
