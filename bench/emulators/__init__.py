"""Local emulators of the provider wire protocols the engine's clients speak.

* :mod:`.stt` — Telnyx real-time STT WebSocket (recognises registered utterances by audio).
* :mod:`.deepgram` — Deepgram's live streaming STT WebSocket (the same recogniser).
* :mod:`.tts` — Telnyx TTS WebSocket (espeak-ng speech, or a tone when it is missing).
* :mod:`.llm` — OpenAI-compatible chat completions (scripted answers, tool calls, JSON
  schema output) and ``/v1/audio/speech``.
* :mod:`.embeddings` — OpenAI-compatible ``/v1/embeddings`` (deterministic hashed bag of words).
* :mod:`.server` — all of them on one aiohttp app: :func:`start_emulators` in-process, or
  ``python -m bench.emulators.server`` as a separate process.
* :mod:`.profiles` — latency profiles and the fault switch (how to break one call).

The real clients in :mod:`engine.providers` talk to these over real sockets.
"""
