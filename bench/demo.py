"""``callagent demo``: a local call end to end, no configuration, no internet.

Starts, in one process, the server (media engine and agent) with its local providers
(the bundled STT, LLM and TTS emulators over real sockets), then has a simulated
callee from the recorded-call corpus talk to the agent over a Telnyx media stream.
Prints the conversation as it happens, each turn's latency at the carrier edge and
its stages, and a summary. ``--calls N`` runs N calls at once and prints the bench
table instead.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from callagent.wiring import agent_factory, build_providers
from control_plane.app import METRICS_KEY, create_app
from control_plane.settings import Settings
from engine.conversation.ports import CallReport, TurnRecord

from .callee import CallMeasurement, ScriptedCallee
from .corpus.model import CallScript, load_corpus
from .report import RunFigures, print_table

DEMO_SCRIPT = "plain-01-order-status"


class ConsoleReporter:
    """Prints each turn as the agent records it."""

    def __init__(self, t0: float, verbose: bool) -> None:
        self.t0 = t0
        self.verbose = verbose
        self.reports: list[CallReport] = []
        self.turns: list[dict[str, Any]] = []

    async def turn(self, call_control_id: str | None, record: TurnRecord) -> None:
        self.turns.append(record.timeline)
        if not self.verbose:
            return
        t = time.monotonic() - self.t0
        stages = record.timeline.get("stages_ms") or {}
        latency = record.timeline.get("turn_latency_ms")
        print(f"[{t:6.2f}s] caller: {record.caller_text}")
        print(f"[{t:6.2f}s] agent:  {record.agent_text}" + ("  (interrupted)" if record.interrupted else ""))
        if latency is not None:
            shown = ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
            spec = " speculative" if record.timeline.get("speculative") else ""
            print(f"          turn latency {latency:.0f} ms{spec} ({shown})")

    async def finished(self, report: CallReport) -> None:
        self.reports.append(report)


async def _one_call(url: str, script: CallScript, client: aiohttp.ClientSession) -> CallMeasurement:
    stream_id = str(uuid.uuid4())
    async with client.ws_connect(url) as ws:
        await ws.send_str('{"event":"connected","version":"1.0.0"}')
        await ws.send_str(orjson.dumps({
            "event": "start", "sequence_number": "1", "stream_id": stream_id,
            "start": {"call_control_id": f"v3:demo-{uuid.uuid4().hex[:12]}", "from": "+15550100001",
                      "to": "+15550100002", "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}},
        }).decode())
        result = await ScriptedCallee(script, stream_id=stream_id).run(ws)
        await ws.send_str(orjson.dumps({"event": "stop", "stream_id": stream_id, "stop": {}}).decode())
    return result


async def run_demo(calls: int = 1) -> int:
    settings = Settings()
    providers = await build_providers(settings)
    t0 = time.monotonic()
    reporter = ConsoleReporter(t0, verbose=calls == 1)
    app = create_app(settings, listener_factory=agent_factory(settings, providers, reporter=reporter))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}{settings.server.media_path}"
    corpus = load_corpus()
    if calls == 1:
        scripts = [next(s for s in corpus if s.name == DEMO_SCRIPT)]
        print(f"local call: engine at {url}, providers: bundled emulators ('{settings.providers.local_profile}' profile)")
        print(f"the callee plays corpus script {DEMO_SCRIPT!r}\n")
    else:
        usable = [s for s in corpus if s.answer == "human"]
        scripts = [usable[i % len(usable)] for i in range(calls)]
        print(f"{calls} concurrent local calls against {url} …")
    try:
        async with aiohttp.ClientSession() as client:
            results = await asyncio.gather(*(_one_call(url, s, client) for s in scripts), return_exceptions=True)
        for _ in range(100):  # let the agents file their reports
            if len(reporter.reports) >= calls:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
        await providers.aclose()
    measured = [r for r in results if isinstance(r, CallMeasurement)]
    failures = [repr(r) for r in results if not isinstance(r, CallMeasurement)]
    figures = RunFigures(concurrency=calls, calls=measured, engine_turns=reporter.turns, failures=failures).as_json()
    if calls == 1:
        for report in reporter.reports:
            print(f"\ncall ended: {report.end_reason}")
            print(f"summary:    {report.summary}")
            print(f"outcome:    {report.outcome}")
        lat = figures["turn_latency_ms"]
        print(f"\nturn latency at the carrier edge: p50 {lat['p50']} ms over {lat['n']} turns; "
              f"missed turns {figures['missed_turns']}, premature replies {figures['premature_replies']}")
    else:
        print_table(figures)
    ok = not failures and figures["calls_completed"] == calls and figures["missed_turns"] == 0
    print("\nresult: " + ("OK" if ok else f"FAILED {failures[:3]}"))
    return 0 if ok else 1
