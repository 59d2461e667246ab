"""All three emulators on one aiohttp app: in-process, or as a separate process.

In-process (tests, the demo)::

    emulators = await start_emulators("fast", known_utterances={"Hi there.": pcm8k})
    ... emulators.stt_url, emulators.tts_url, emulators.llm_base_url, emulators.api_key ...
    await emulators.close()

As a process (the bench pins load, engine and providers to different cores)::

    python -m bench.emulators.server --port 8765 --profile fast --corpus bench/corpus/calls

prints one JSON line with the URLs once it listens. Control endpoints (no auth, local):
``POST/GET/DELETE /_control/faults`` (see :mod:`.profiles`), ``GET /_control/stats``,
``POST /_control/utterances?text=...`` with PCM16 8 kHz as the body to register a line.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web

from engine import _audioop as audioop

from ..corpus.model import load_corpus
from . import deepgram, llm, stt, tts
from .embeddings import EmbeddingsEmulator
from .profiles import FaultSwitch, LatencyProfile, get_profile

Utterances = Mapping[str, bytes] | Iterable[tuple[str, bytes]]


@dataclass
class RunningEmulators:
    host: str
    port: int
    api_key: str
    profile: LatencyProfile
    faults: FaultSwitch
    recogniser: stt.UtteranceRecogniser
    stt: stt.SttEmulator
    tts: tts.TtsEmulator
    llm: llm.LlmEmulator
    deepgram: deepgram.DeepgramEmulator
    embeddings: EmbeddingsEmulator | None = None
    runner: web.AppRunner | None = None

    @property
    def stt_url(self) -> str:
        return f"ws://{self.host}:{self.port}{stt.PATH}"

    @property
    def deepgram_url(self) -> str:
        return f"ws://{self.host}:{self.port}{deepgram.PATH}"

    @property
    def tts_url(self) -> str:
        return f"ws://{self.host}:{self.port}{tts.PATH}"

    @property
    def llm_base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def endpoints(self) -> dict[str, str]:
        """Which provider each emulator stands in for (``kind.name``, as the registry names them)."""
        return {"stt.telnyx": self.stt_url, "stt.deepgram": self.deepgram_url, "tts.telnyx": self.tts_url,
                "llm.openai": self.llm_base_url}

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.port}/_control"

    def stats(self) -> dict[str, object]:
        return {"stt": dataclasses.asdict(self.stt.stats), "deepgram": dataclasses.asdict(self.deepgram.stats),
                "tts": dataclasses.asdict(self.tts.stats),
                "llm": {k: v for k, v in dataclasses.asdict(self.llm.stats).items() if k != "last_request"}}

    async def close(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> RunningEmulators:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def build_app(profile: str | LatencyProfile = "fast", *, known_utterances: Utterances | None = None,
              api_key: str = "emulator-key", espeak: bool | None = None,
              host: str = "127.0.0.1", stt_punctuation: str = "as-registered",
              ) -> tuple[web.Application, RunningEmulators]:
    profile = get_profile(profile)
    faults = FaultSwitch()
    pairs = known_utterances.items() if isinstance(known_utterances, Mapping) else (known_utterances or ())
    recogniser = stt.UtteranceRecogniser(pairs)
    synthesizer = tts.Synthesizer(espeak=espeak)
    emulators = RunningEmulators(
        host=host, port=0, api_key=api_key, profile=profile, faults=faults, recogniser=recogniser,
        stt=stt.SttEmulator(api_key=api_key, profile=profile, faults=faults, recogniser=recogniser,
                            punctuation=stt_punctuation),
        tts=tts.TtsEmulator(api_key=api_key, profile=profile, faults=faults, synthesizer=synthesizer),
        llm=llm.LlmEmulator(api_key=api_key, profile=profile, faults=faults, synthesizer=synthesizer),
        deepgram=deepgram.DeepgramEmulator(api_key=api_key, profile=profile, faults=faults, recogniser=recogniser,
                                           punctuation=stt_punctuation),
    )
    app = web.Application(client_max_size=16 << 20)
    app.router.add_get(stt.PATH, emulators.stt.handle)
    app.router.add_get(tts.PATH, emulators.tts.handle)
    app.router.add_get(deepgram.PATH, emulators.deepgram.handle)
    emulators.llm.add_routes(app, "/v1")
    emulators.embeddings = EmbeddingsEmulator(api_key)
    app.router.add_post("/v1/embeddings", emulators.embeddings.handle)
    _add_control_routes(app, emulators)
    return app, emulators


def _add_control_routes(app: web.Application, emulators: RunningEmulators) -> None:
    async def arm(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            emulators.faults.arm(body["kind"], body.get("service", "*"), int(body.get("count", 1)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"armed": emulators.faults.armed()})

    async def armed(request: web.Request) -> web.Response:
        return web.json_response({"armed": emulators.faults.armed()})

    async def disarm(request: web.Request) -> web.Response:
        emulators.faults.clear()
        return web.json_response({"armed": []})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(emulators.stats())

    async def utterance(request: web.Request) -> web.Response:
        text = request.query.get("text", "").strip()
        pcm = await request.read()
        if not text or not pcm or len(pcm) % 2:
            return web.json_response({"error": "need ?text= and a PCM16 8 kHz body"}, status=400)
        emulators.recogniser.add(text, pcm)
        return web.json_response({"utterances": len(emulators.recogniser)})

    app.router.add_post("/_control/faults", arm)
    app.router.add_get("/_control/faults", armed)
    app.router.add_delete("/_control/faults", disarm)
    app.router.add_get("/_control/stats", stats)
    app.router.add_post("/_control/utterances", utterance)


async def start_emulators(profile: str | LatencyProfile = "fast", *, host: str = "127.0.0.1", port: int = 0,
                          known_utterances: Utterances | None = None, api_key: str = "emulator-key",
                          espeak: bool | None = None, stt_punctuation: str = "as-registered") -> RunningEmulators:
    """Start the STT, TTS and LLM emulators on one free port (or ``port``)."""
    app, emulators = build_app(profile, known_utterances=known_utterances, api_key=api_key, espeak=espeak,
                               host=host, stt_punctuation=stt_punctuation)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    emulators.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    emulators.runner = runner
    return emulators


def load_corpus_utterances(root: Path) -> list[tuple[str, bytes]]:
    """Every caller line of the corpus as (text, PCM16 8 kHz), for the recogniser."""
    pairs = []
    for script in load_corpus(root):
        # The background of a noisy call (babble, street, hum) is known too, as saying nothing:
        # a real recogniser does not transcribe reversed babble 10 dB under the caller, nor
        # traffic. Without this, every burst of it became "(unrecognised speech)" words.
        noise = script.directory / "noise.wav"
        if noise.is_file():
            pairs.append(("", _pcm8k(noise)))
        for step in script.utterances():
            pcm = _pcm8k(script.audio_path(step))
            # The voiced span, cut on 20 ms frame boundaries (the recogniser hashes whole frames
            # from the line's start); in noisy calls the lead-in and lead-out are the background
            # alone, which must not "recognise" the line when the callee plays that noise later.
            first = int(step.speech_start_s / 0.02) * 320
            last = min(len(pcm), -(-int(step.speech_end_s * 1000) // 20) * 320)
            pairs.append((step.text, pcm[first:last]))
            if noise.is_file():
                pairs.append(("", pcm[:first]))
                pairs.append(("", pcm[last:]))
    return pairs


def _pcm8k(path: Path) -> bytes:
    pcm, rate = tts.decode_wav(path.read_bytes())
    return pcm if rate == 8000 else audioop.ratecv(pcm, 2, 1, rate, 8000, None)[0]


async def _serve(args: argparse.Namespace) -> None:
    utterances = [pair for root in args.corpus for pair in load_corpus_utterances(Path(root))] or None
    emulators = await start_emulators(args.profile, host=args.host, port=args.port, known_utterances=utterances,
                                      api_key=args.api_key, espeak=False if args.no_espeak else None,
                                      stt_punctuation=args.stt_punctuation)
    print(orjson.dumps({
        "stt_url": emulators.stt_url, "deepgram_url": emulators.deepgram_url, "tts_url": emulators.tts_url,
        "llm_base_url": emulators.llm_base_url,
        "control_url": emulators.control_url, "profile": emulators.profile.name,
        "utterances": len(emulators.recogniser),
    }).decode(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulators.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulators.server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--profile", default="fast", help="fast | realistic | slow")
    parser.add_argument("--api-key", default="emulator-key")
    parser.add_argument("--corpus", action="append", default=[],
                        help="register every caller line of this directory of calls (repeatable: "
                        "bench/corpus/calls, bench/corpus/field)")
    parser.add_argument("--no-espeak", action="store_true", help="tones instead of espeak-ng speech")
    parser.add_argument("--stt-punctuation", choices=stt.PUNCTUATION_MODES, default="as-registered",
                        help="none: transcripts lower-cased without punctuation, like an engine that does not "
                        "punctuate (a connection's emulator_punctuation=none query parameter does the same)")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(args))
    else:
        uvloop.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
