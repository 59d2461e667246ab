"""``callagent demo``: a local outbound call end to end, no configuration, no internet.

Everything runs in one process on this machine: the server (REST API, webhooks, media
engine, call agent) with its embedded store, the bundled Telnyx emulator (Call Control,
signed webhooks, media streams) and the STT/LLM/TTS emulators, all over real sockets.
The demo creates an organisation, places a call with ``POST /api/calls/start``, and the
emulator's simulated callee plays a recorded corpus call. It prints the conversation as
the API records it (who said what, each turn's latency and stages) and the final
summary. ``--calls N`` places N calls at once and prints the bench table instead.
``--providers local`` replaces the STT and TTS emulators with offline models (Whisper,
piper or espeak-ng); the LLM stays the chat emulator.

The demo is composition (the server, the local carrier) and printing; the callee's
measurements and the figures table are the bench's, loaded when the demo runs.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from control_plane.admin import create_organisation
from control_plane.app import METRICS_KEY
from control_plane.settings import Settings
from control_plane.store import TERMINAL_STATUSES

from .call import describe_turn
from .local import free_port, start_local_carrier
from .runtime import freeze_startup_heap
from .server import build_server
from .wiring import describe_providers, tuned_for_providers

DEMO_SCRIPT = "plain-01-order-status"
CALL_TIMEOUT_S = 120.0
PATIENT_REPLY_IDLE_S = 2.0


def _print_turn(t0: float, turn: dict[str, Any]) -> None:
    at = time.monotonic() - t0
    caller, agent, *latency = describe_turn(turn)  # the same lines `callagent call` prints
    print(f"[{at:6.2f}s] {caller}")
    print(f"[{at:6.2f}s] {agent}")
    for line in latency:
        print(f"  {line}")


async def run_demo(calls: int = 1, *, stt: str | None = None, tts: str | None = None) -> int:
    """``stt``/``tts`` override the settings' providers (``callagent demo --providers local``)."""
    with tempfile.TemporaryDirectory(prefix="callagent-demo-") as data_dir:
        return await _run(calls, Path(data_dir), stt, tts)


async def _run(calls: int, data_dir: Path, stt: str | None, tts: str | None) -> int:
    from bench.report import RunFigures, print_table

    port = free_port()
    measurements: list[Any] = []  # the callee's CallMeasurement per call
    settings = Settings(data_dir=data_dir)
    chosen = {k: v for k, v in (("stt", stt), ("tts", tts)) if v is not None}
    if chosen:
        settings = tuned_for_providers(
            settings.model_copy(update={"providers": settings.providers.model_copy(update=chosen)}))
    settings, carrier = await start_local_carrier(
        settings, port, on_result=lambda call, result: measurements.append(result),
        script=DEMO_SCRIPT if calls == 1 else None,
        # The simulated caller takes 0.5 s of quiet as the end of the agent's reply and talks
        # on: right for the emulators, too impatient for Whisper (~0.4 s an utterance alone).
        reply_idle_s=PATIENT_REPLY_IDLE_S if stt == "whisper" else None,
    )
    server = await build_server(settings, keep_turns=100_000)
    app, settings = server.app, server.settings
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    freeze_startup_heap()
    base = f"http://127.0.0.1:{port}"
    failures: list[str] = []
    t0 = time.monotonic()
    try:
        _, api_key = await create_organisation("demo", settings=settings)
        headers = {"Authorization": f"Bearer {api_key}"}
        async with aiohttp.ClientSession(base, headers=headers) as api:
            if calls == 1:
                print(f"server at {base} (local mode: Telnyx is the bundled emulator)")
                print(describe_providers(settings))
                print(f"POST /api/calls/start -> the emulator dials, the callee plays corpus call {DEMO_SCRIPT!r}\n")
            else:
                print(describe_providers(settings))
                print(f"{calls} concurrent local calls through POST /api/calls/start …")
            call_ids = []
            for i in range(calls):
                async with api.post("/api/calls/start", json={
                    "to": f"+1555{2000000 + i:07d}", "from": "+15550100000",
                    "agent_config": {"personality": "friendly"},
                }) as response:
                    body = await response.json()
                    if response.status >= 300:
                        failures.append(f"call {i}: HTTP {response.status} {body}")
                        continue
                    call_ids.append(body["call_id"])
            if calls == 1 and call_ids:
                print(f"call {call_ids[0]} initiated\n")
            shown = 0
            deadline = time.monotonic() + CALL_TIMEOUT_S
            pending = set(call_ids)
            details: dict[str, dict[str, Any]] = {}
            while pending and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                for call_id in list(pending):
                    async with api.get(f"/api/calls/{call_id}") as response:
                        detail = await response.json()
                    details[call_id] = detail
                    if calls == 1:
                        for turn in detail.get("turns", [])[shown:]:
                            _print_turn(t0, turn)
                            shown += 1
                    if detail.get("status") in TERMINAL_STATUSES and detail.get("summary") is not None:
                        pending.discard(call_id)
                    elif (detail.get("status") in TERMINAL_STATUSES
                          and time.monotonic() > deadline - CALL_TIMEOUT_S + 60):
                        pending.discard(call_id)  # ended without a summary (e.g. nobody spoke)
            failures += [f"call {c}: still {details.get(c, {}).get('status')} after {CALL_TIMEOUT_S:.0f} s"
                         for c in pending]
            for _ in range(40):  # the callee's own measurements land when its socket closes
                if len(measurements) >= len(call_ids):
                    break
                await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
        await server.close()
        await carrier.close()
    engine_turns = list(app[METRICS_KEY].recent_turns)
    figures = RunFigures(concurrency=calls, calls=measurements, engine_turns=engine_turns, failures=failures).as_json()
    if calls == 1 and details:
        detail = next(iter(details.values()))
        print(f"\ncall {detail['status']} ({detail.get('hangup_cause')}), {detail.get('duration_s') or 0:.1f} s")
        print(f"summary: {detail.get('summary')}")
        print(f"outcome: {detail.get('outcome')}")
        lat = figures["turn_latency_ms"]
        print(f"\nturn latency at the carrier edge: p50 {lat['p50']} ms over {lat['n']} turns; "
              f"missed turns {figures['missed_turns']}, premature replies {figures['premature_replies']}")
    elif calls > 1:
        print_table(figures)
    ok = not failures and figures["calls_completed"] == calls and figures["missed_turns"] == 0
    print("\nresult: " + ("OK" if ok else f"FAILED {failures[:3]}"))
    return 0 if ok else 1
