"""``callagent bench micro``: CPU microseconds per 20 ms frame on the engine's hot paths.

Inbound: one Telnyx media message -> JSON parse -> base64 -> jitter buffer ->
codec decode -> VAD -> endpointer (the whole of ``MediaSession.receive``).
Outbound: agent PCM -> encode -> re-frame -> serialize -> paced playout pull.
Figures are medians over repeated batches of process CPU time, per frame; the
machine is shared, so compare ratios from one run, not numbers across runs.
"""

from __future__ import annotations

import base64
import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from engine.codecs import PCMU
from engine.config import EngineConfig, PlayoutConfig, VadConfig
from engine.session import MediaSession
from engine.vad import make_vad

from .signals import silence, voiced, white_noise

INBOUND_TARGET_US = 20.0
OUTBOUND_TARGET_US = 15.0
FRAME_S = 0.02


def _start_message() -> bytes:
    return orjson.dumps({
        "event": "start", "sequence_number": "1", "stream_id": "bench-stream",
        "start": {"call_control_id": "v3:bench",
                  "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}},
    })


def _media_messages(pcm: bytes, first_chunk: int = 1) -> list[bytes]:
    """Pre-serialized Telnyx media messages, the way the carrier sends them."""
    ulaw = PCMU.encode(pcm)
    out = []
    for i in range(len(ulaw) // 160):
        chunk = first_chunk + i
        out.append(orjson.dumps({
            "event": "media", "sequence_number": str(chunk + 1), "stream_id": "bench-stream",
            "media": {"track": "inbound", "chunk": str(chunk), "timestamp": str(chunk * 20),
                      "payload": base64.b64encode(ulaw[i * 160:(i + 1) * 160]).decode()},
        }))
    return out


def _median_us_per_frame(run_batch: Callable[[], int], repeats: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.process_time_ns()
        frames = run_batch()
        samples.append((time.process_time_ns() - t0) / 1000 / frames)
    return statistics.median(samples), samples


def measure_inbound(vad_kind: str, audio: bytes, repeats: int = 15) -> float:
    config = EngineConfig(vad=VadConfig(kind=vad_kind))  # type: ignore[arg-type]
    messages = _media_messages(audio)
    state: dict[str, Any] = {"session": None, "now": 0.0}

    def batch() -> int:
        session = MediaSession(config)
        session.receive(_start_message(), 0.0)
        now = 0.0
        receive = session.receive
        for msg in messages:
            now += FRAME_S
            receive(msg, now)
        state["session"] = session
        return len(messages)

    median, _ = _median_us_per_frame(batch, repeats)
    return median


def measure_outbound(mode: str = "paced", seconds: float = 4.0, repeats: int = 15) -> float:
    config = EngineConfig(playout=PlayoutConfig(mode=mode))  # type: ignore[arg-type]
    pcm = voiced(seconds)
    chunk = 8000 * 2 // 5  # 200 ms TTS chunks, as a streaming TTS delivers them
    chunks = [pcm[i:i + chunk] for i in range(0, len(pcm), chunk)]
    n_frames = len(pcm) // 320

    def batch() -> int:
        session = MediaSession(config)
        session.receive(_start_message(), 0.0)
        now = 0.0
        out = session.outbound
        for _i, c in enumerate(chunks):
            session.speak(1, c)
            for _ in range(10):  # 200 ms of 20 ms sender ticks per chunk
                now += FRAME_S
                session.tick(now)
                out.clear()
        session.finish_utterance(1)
        for _ in range(50):
            now += FRAME_S
            session.tick(now)
            out.clear()
        if session.playout.frames_sent < n_frames:
            raise RuntimeError(f"outbound bench sent {session.playout.frames_sent} of {n_frames} frames")
        return n_frames

    median, _ = _median_us_per_frame(batch, repeats)
    return median


def _vad_kinds() -> list[str]:
    kinds = ["energy", "webrtc", "hybrid"]
    try:
        make_vad(VadConfig(kind="silero"), 8000)
        kinds.append("silero")
    except Exception:
        pass
    return kinds


def run_micro(json_path: str | None = None) -> dict:
    default_kind = EngineConfig().vad.kind
    conversation = silence(1.0) + voiced(3.0) + silence(1.0) + voiced(2.0) + silence(1.0)
    noisy = white_noise(8.0, level=0.02)  # steady noise, no speech
    results: dict = {"unit": "cpu_us_per_20ms_frame", "default_vad": default_kind, "inbound": {}, "outbound": {}}
    for kind in _vad_kinds():
        results["inbound"][kind] = {
            "conversation": round(measure_inbound(kind, conversation), 2),
            "speech_only": round(measure_inbound(kind, voiced(4.0)), 2),
            "silence_only": round(measure_inbound(kind, silence(4.0)), 2),
            "noise_only": round(measure_inbound(kind, noisy), 2),
        }
    for mode in ("paced", "bulk"):
        results["outbound"][mode] = round(measure_outbound(mode), 2)
    inbound_default = results["inbound"][default_kind]["conversation"]
    results["targets"] = {
        "inbound_us": INBOUND_TARGET_US, "outbound_us": OUTBOUND_TARGET_US,
        "inbound_pass": inbound_default <= INBOUND_TARGET_US,
        "outbound_pass": results["outbound"]["paced"] <= OUTBOUND_TARGET_US,
    }
    _print(results)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


def _print(results: dict) -> None:
    print(f"median CPU µs per 20 ms frame (default VAD: {results['default_vad']})")
    print(f"{'inbound, VAD':<16}{'conversation':>14}{'speech':>10}{'silence':>10}{'noise':>10}")
    for kind, row in results["inbound"].items():
        print(f"{kind:<16}{row['conversation']:>14.2f}{row['speech_only']:>10.2f}{row['silence_only']:>10.2f}{row['noise_only']:>10.2f}")
    for mode, value in results["outbound"].items():
        print(f"outbound {mode:<8}{value:>14.2f}")
    t = results["targets"]
    print(f"inbound target ≤ {t['inbound_us']} µs: {'PASS' if t['inbound_pass'] else 'MISS'}; "
          f"outbound target ≤ {t['outbound_us']} µs: {'PASS' if t['outbound_pass'] else 'MISS'}")
