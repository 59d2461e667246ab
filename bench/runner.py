"""``callagent bench``: replay corpus calls against the engine and measure at the carrier edge.

Layout on a 2-core machine: the engine runs as its own process pinned to core 0; this
process (provider emulators, simulated callees, measurement) is pinned to core 1. The
engine's CPU and RSS are read from /proc for its process alone; this side's own CPU is
reported too, and a run where it went above 90 % of its core is marked invalid — then
the load side, not the engine, was the limit.

Paths: ``full`` (default) starts each call with ``POST /api/calls/start``; the engine dials
the Telnyx emulator, which delivers signed webhooks and opens the media stream, and its
callee plays the corpus script — the whole product path. ``media`` opens Telnyx media
streams straight to the engine's media endpoint (as Telnyx does for a TeXML ``<Stream>``),
leaving REST, dialing and webhooks out. Both run the full conversation.

Callers: ``corpus`` (default) plays the corpus at its scripted anchors; ``field`` plays the
field callers (:mod:`bench.corpus.field`: lines, voices and rates the corpus lacks) with reply
gaps drawn from 0.2 to 1.5 s; ``all`` plays both. The STT emulator learns the lines of the
callers played, from their scripts, as it always has.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from callagent import freeze_startup_heap
from control_plane.store.records import TERMINAL_STATUSES
from engine.providers.stt_engines import ENGINES, UNKNOWN, stt_engine

from .callee import CallMeasurement, ReplyGaps, ScriptedCallee
from .corpus.model import CORPUS_DIR, FIELD_CATEGORIES, FIELD_DIR, CallScript, load_corpus
from .events import EventReceiver, expected_events, wait_for
from .procinfo import cpu_seconds, own_cpu_seconds, pin, rss_bytes
from .report import RunFigures, print_categories, print_table, print_turns, write_json, write_plot
from .stats import summary
from .telnyx_emulator.media import MarkEcho
from .usage import call_details, usage_line, usage_report

ENGINE_CORE = 0
LOAD_CORE = 1
SETTLE_S = 60.0
"""How long, after the last call, its records (summary, usage) and events may take to arrive."""
CALLERS = {"corpus": (CORPUS_DIR,), "field": (FIELD_DIR,), "all": (CORPUS_DIR, FIELD_DIR)}


@dataclass
class BenchOptions:
    path: str = "full"
    calls: int = 100
    concurrency: int = 100
    ramp_up_s: float = 10.0
    profile: str = "fast"
    stt_engine: str = "deepgram"
    """The Telnyx transcription_engine the engine asks for; the STT emulator behaves like it."""
    categories: tuple[str, ...] = ()
    callers: str = "corpus"
    target: str | None = None
    json_path: str | None = None
    plot_path: str | None = None
    capacity: bool = False
    capacity_start: int = 50
    capacity_step: int = 50
    capacity_max: int = 400
    capacity_unloaded_ms: Mapping[tuple[str, str], float] | None = None
    """Each (script, step)'s turn latency with no load (the virtual clock's,
    :func:`bench.virtual.unloaded_latencies`): what the providers and the turn rules take.
    ``--capacity`` counts only what load adds to it."""
    capacity_headroom_ms: float = 50.0
    """How much load may add to 95 % of a level's turns (each against its unloaded latency)."""
    quiet: bool = False
    mark_echo: str = "played"
    """When the callees' carrier echoes marks: played, never or late (see MarkEcho)."""
    clock: str = "real"
    """real: the engine in its own process on the wall clock; virtual: everything on one virtual
    clock (bench.virtual), where ``calls`` 0 plays each script once and ``concurrency`` 0 all at once."""
    mark_echo_late_s: float = 1.5
    stt_punctuation: str = "as-registered"
    """as-registered (the lines' own punctuation) or none (an engine that does not punctuate)."""
    knowledge_passages: int = 0
    """Full path: attach a knowledge base of this many passages (bench.kb's corpus) to every call."""
    events: str = "off"
    """Full path, ``on``: the organisation's event webhooks go to a receiver on the load side
    (bench.events), which verifies and counts them; ``off``: no endpoint, no events."""

    @property
    def mark_echo_policy(self) -> MarkEcho:
        return MarkEcho(self.mark_echo, self.mark_echo_late_s)  # type: ignore[arg-type]


def capacity_rule(options: BenchOptions) -> str:
    """What a ``--capacity`` level must hold, in words."""
    latency = (f"load adding ≤ {options.capacity_headroom_ms:g} ms to 95 % of turns"
               if options.capacity_unloaded_ms is not None else "p95 < 400 ms")
    return f"{latency} and p99 lateness ≤ 5 ms"


def load_added(data: dict[str, Any], unloaded: Mapping[tuple[str, str], float]) -> dict[str, float | None]:
    """What the load added to each turn this level measured: its latency less the same script and
    step's unloaded one (p50/p95/p99). Turn by turn, because the latencies cluster (kept
    speculations ~300 ms, replies started on the final ~370, goodbyes ~455): a p95 over a level's
    mix and one over another mix can sit in different clusters with no load in it at all."""
    return summary(t["latency_ms"] - base for t in data["turns"] if t["latency_ms"] is not None
                   and (base := unloaded.get((t["script"], t["step"]))) is not None)


def level_holds(data: dict[str, Any], options: BenchOptions, added: dict[str, float | None] | None = None) -> bool:
    """Whether a ``--capacity`` level held: the load added at most the headroom to 95 % of its turns
    (without unloaded figures: p95 < 400 ms), audio went out on time, and the load side was not
    itself the bottleneck. Against a fixed 400 ms a profile whose providers alone take longer
    (Deepgram's last words come in the final, ~370 ms with `fast`) would make every level miss: a
    figure about the providers, not the core. ``added``: :func:`load_added`'s figures, if worked out
    already."""
    unloaded = options.capacity_unloaded_ms
    if unloaded is None:
        p95 = data["turn_latency_ms"]["p95"]
        within = p95 is not None and p95 < 400
    else:
        added = added if added is not None else load_added(data, unloaded)
        measured = sum(t["latency_ms"] is not None for t in data["turns"])
        # Turns without an unloaded twin are left out; a level most of whose turns have none
        # (another corpus, other callers) is not judged by the few that do.
        within = (added["p95"] is not None and added["p95"] <= options.capacity_headroom_ms
                  and (added["n"] or 0) >= 0.9 * measured)
    return within and data["outbound_late_ms"]["p99"] <= 5 and bool(data["valid"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_environment(emulators: Any) -> dict[str, str]:
    """The settings the bench's engine runs with on top of the operator's own environment: the
    emulators as its providers, and the callers' streams accepted. (The virtual clock's in-process
    engine reads the same, bench.virtual.)"""
    return {
        "TELNYX_API_KEY": emulators.api_key,
        "CALLAGENT_PROVIDERS__MODE": "remote",
        "CALLAGENT_PROVIDERS__STT_URL": emulators.stt_url,
        "CALLAGENT_PROVIDERS__TTS_URL": emulators.tts_url,
        "CALLAGENT_PROVIDERS__LLM_BASE_URL": emulators.llm_base_url,
        "CALLAGENT_PROVIDERS__LLM_MODEL": "emulator",
        "CALLAGENT_PROVIDERS__LLM_API_KEY": emulators.api_key,  # (the Telnyx key goes to Telnyx's LLM only)
        # The bench's callers open media streams directly, as no Telnyx call would.
        "CALLAGENT_STREAMS__ACCEPT_UNKNOWN": "true",
    }


class EngineProcess:
    """``python -m bench.engine_server`` pinned to the engine core, pointed at the emulators."""

    def __init__(self, emulators: Any, *, port: int | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env["CALLAGENT_DATA_DIR"] = os.environ.get("CALLAGENT_DATA_DIR", "/tmp/callagent-bench-data")
        env.update(engine_environment(emulators))
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.engine_server", "--port", str(self.port)],
            env=env, stdout=subprocess.PIPE, stderr=None, text=True,
        )
        self.pinned = pin({ENGINE_CORE}, self.proc.pid)

    async def ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"engine process exited with {self.proc.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with client.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError("engine process did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _scripts(categories: tuple[str, ...], callers: str = "corpus") -> list[CallScript]:
    """The calls to cycle through; with several sets, alternating, so a short run plays each."""
    sets = [[s for s in load_corpus(root) if s.answer == "human"] for root in CALLERS[callers]]
    corpus = [s for row in itertools.zip_longest(*sets) for s in row if s is not None]
    if categories:
        corpus = [s for s in corpus if s.category in categories]
        if not corpus:
            raise SystemExit(f"no {callers} calls in categories {categories}")
    return corpus


def reply_gaps(script: CallScript, call_index: int) -> ReplyGaps | None:
    """Field callers answer after gaps drawn from 0.2 to 1.5 s (seeded per call), the corpus at
    its scripted anchors."""
    if script.category not in FIELD_CATEGORIES:
        return None
    return ReplyGaps(0.2, 1.5, seed=f"{call_index}:{script.name}")


async def _one_call(url: str, script: CallScript, client: aiohttp.ClientSession,
                    mark_echo: MarkEcho, gaps: ReplyGaps | None = None) -> tuple[CallMeasurement, float]:
    stream_id = str(uuid.uuid4())
    started = time.monotonic()
    async with client.ws_connect(url, heartbeat=None, autoping=True) as ws:
        await ws.send_str('{"event":"connected","version":"1.0.0"}')
        await ws.send_str(orjson.dumps({
            "event": "start", "sequence_number": "1", "stream_id": stream_id,
            "start": {"call_control_id": f"v3:bench-{uuid.uuid4().hex[:16]}", "from": "+15550100001",
                      "to": "+15550100002", "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}},
        }).decode())
        result = await ScriptedCallee(script, stream_id=stream_id, mark_echo=mark_echo, reply_gaps=gaps).run(ws)
        await ws.send_str(orjson.dumps({"event": "stop", "stream_id": stream_id, "stop": {}}).decode())
    return result, time.monotonic() - started


class FullPath:
    """Calls through the product: REST start -> Telnyx emulator dial -> webhooks -> stream."""

    def __init__(self, carrier: Any, api_key: str, agent_config: dict[str, Any] | None = None) -> None:
        self.carrier = carrier
        self.api_key = api_key
        self.agent_config = agent_config or {"personality": "friendly"}
        self.waiting: dict[str, asyncio.Future[CallMeasurement]] = {}
        self.scripts: dict[str, CallScript] = {}
        self.gaps: dict[str, ReplyGaps | None] = {}
        self.results: dict[str, CallMeasurement] = {}
        self.call_ids: list[str] = []
        self._next = 0
        self._settling: dict[str, asyncio.Task[None]] = {}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def on_result(self, call: Any, result: CallMeasurement) -> None:
        """A stream of the call ended. The call is measured once it ends: a stream the engine
        lost may be re-attached (``streaming_start``), and the callee on the new stream then
        plays the script again (a caller starting over after the cut-off) and measures it."""
        self.results[call.to] = result
        if call.to not in self._settling:
            self._settling[call.to] = asyncio.ensure_future(self._settle(call))

    async def _settle(self, call: Any) -> None:
        try:
            await call.wait_ended()
        finally:
            to = call.to
            del self._settling[to]
            self.scripts.pop(to, None)
            self.gaps.pop(to, None)
            result = self.results.pop(to)
            future = self.waiting.pop(to, None)
            if future is not None and not future.done():
                future.set_result(result)

    async def call(self, engine_url: str, script: CallScript, client: aiohttp.ClientSession,
                   gaps: ReplyGaps | None = None) -> CallMeasurement:
        self._next += 1
        to = f"+1555{3000000 + self._next:07d}"
        future = asyncio.get_running_loop().create_future()
        self.waiting[to] = future
        self.scripts[to] = script
        self.gaps[to] = gaps
        async with client.post(
            engine_url + "/api/calls/start", headers=self.headers,
            json={"to": to, "from": "+15550100000", "agent_config": self.agent_config},
        ) as response:
            if response.status >= 300:
                self.waiting.pop(to, None)
                raise RuntimeError(f"call start failed: HTTP {response.status} {await response.text()}")
            self.call_ids.append((await response.json())["call_id"])
        return await asyncio.wait_for(future, timeout=180)

    def pick(self, call: Any) -> CallScript:
        return self.scripts[call.to]  # kept until the call ends: a re-attached stream plays it too

    def reply_gaps(self, call: Any) -> ReplyGaps | None:
        return self.gaps.get(call.to)


_MARK_COUNTERS = {"overdue": "callagent_mark_echoes_overdue_total", "late": "callagent_mark_echoes_late_total"}


async def _mark_echo_counters(client: aiohttp.ClientSession, engine_url: str) -> dict[str, int]:
    """The engine's own count of mark echoes it stopped waiting for, and of late ones (its
    /metrics); empty when it does not export them (a --target of another build)."""
    with contextlib.suppress(aiohttp.ClientError, ValueError):
        async with client.get(engine_url + "/metrics") as response:
            if response.status == 200:
                lines = dict(line.rsplit(" ", 1) for line in (await response.text()).splitlines()
                             if line.startswith("callagent_mark_echoes_"))
                return {key: int(float(lines[name])) for key, name in _MARK_COUNTERS.items() if name in lines}
    return {}


async def run_level(options: BenchOptions, engine_url: str, engine_pid: int | None, concurrency: int,
                    calls: int, progress: Any = None, full: FullPath | None = None) -> RunFigures:
    scripts = _scripts(options.categories, options.callers)
    media_url = engine_url + "/media-stream"
    semaphore = asyncio.Semaphore(concurrency)
    ramp = options.ramp_up_s / max(1, concurrency)
    results: list[CallMeasurement] = []
    failures: list[str] = []
    call_seconds = 0.0
    peak_rss = 0
    idle_rss = rss_bytes(engine_pid) if engine_pid else 0
    cpu0 = cpu_seconds(engine_pid) if engine_pid else 0.0
    own0, wall0 = own_cpu_seconds(), time.monotonic()

    async def sample_rss() -> None:
        nonlocal peak_rss
        while True:
            if engine_pid:
                peak_rss = max(peak_rss, rss_bytes(engine_pid))
            await asyncio.sleep(0.5)

    async def call(i: int, client: aiohttp.ClientSession) -> None:
        nonlocal call_seconds
        await asyncio.sleep(min(i, concurrency) * ramp)
        async with semaphore:
            try:
                script = scripts[i % len(scripts)]
                gaps = reply_gaps(script, i)
                if full is not None:
                    started = time.monotonic()
                    result = await full.call(engine_url, script, client, gaps)
                    seconds = time.monotonic() - started
                else:
                    result, seconds = await _one_call(media_url, script, client, options.mark_echo_policy, gaps)
                results.append(result)
                call_seconds += seconds
            except Exception as exc:  # a failed call is a figure, not a crash
                failures.append(f"call {i}: {type(exc).__name__}: {exc}")
            if progress is not None:
                progress()

    sampler = asyncio.ensure_future(sample_rss())
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as client:
        marks0 = await _mark_echo_counters(client, engine_url)
        await asyncio.gather(*(call(i, client) for i in range(calls)))
        marks1 = await _mark_echo_counters(client, engine_url)
        turns = await _engine_turns(client, engine_url + "/bench/turns")
        unmeasured = await _engine_turns(client, engine_url + "/bench/turns?unmeasured=1")
    sampler.cancel()
    wall = time.monotonic() - wall0
    return RunFigures(
        concurrency=concurrency, calls=results, engine_turns=turns, engine_unmeasured=unmeasured,
        engine_cpu_s=(cpu_seconds(engine_pid) - cpu0) if engine_pid else 0.0,
        engine_rss_mib=peak_rss / 2**20, engine_rss_idle_mib=idle_rss / 2**20,
        call_minutes=call_seconds / 60, load_cpu_pct=100 * (own_cpu_seconds() - own0) / wall if wall else 0.0,
        wall_s=wall, failures=failures, mark_echo=options.mark_echo_policy,
        engine_mark_echoes={k: v - marks0.get(k, 0) for k, v in marks1.items()},
    )


async def _engine_turns(client: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """The engine's kept turns (``bench.engine_server``); none from a server that keeps none."""
    with contextlib.suppress(aiohttp.ClientError):
        async with client.get(url) as response:
            if response.status == 200:
                turns: list[dict[str, Any]] = await response.json()
                return turns
    return []


def add_stage_samples(figures: RunFigures, samples: dict[str, list[float]]) -> None:
    """A run's per-stage times (the engine's timelines) and carrier turn latencies, for the plot."""
    for t in figures.engine_turns[-5000:]:
        for stage, ms in (t.get("stages_ms") or {}).items():
            samples.setdefault(stage, []).append(ms)
    samples.setdefault("carrier turn latency", []).extend(
        t.latency_ms for c in figures.calls for t in c.turns if t.latency_ms is not None)


async def run_bench(options: BenchOptions) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from .emulators.server import load_corpus_utterances, start_emulators

    console = Console()
    mark_echo = options.mark_echo_policy  # a bad mode fails here, before anything starts
    if options.events not in ("on", "off"):
        raise SystemExit(f"--events is on or off, not {options.events!r}")
    if options.events == "on" and (options.path != "full" or options.target):
        raise SystemExit("--events on needs the full path of a server the bench starts")
    stt_name = stt_engine(options.stt_engine).name
    if stt_name == UNKNOWN.name:
        raise SystemExit(f"unknown STT engine {options.stt_engine!r}; known: {', '.join(ENGINES)}")
    pinned_self = pin({LOAD_CORE})
    known = [pair for root in CALLERS[options.callers] for pair in load_corpus_utterances(root)]
    emulators = await start_emulators(options.profile, known_utterances=known, stt_punctuation=options.stt_punctuation)
    engine: EngineProcess | None = None
    carrier = None
    full: FullPath | None = None
    receiver: EventReceiver | None = EventReceiver() if options.events == "on" else None
    try:
        if options.target:
            engine_url, engine_pid = options.target.rstrip("/"), None
            if options.path == "full":
                raise SystemExit("--target measures a running server over the media path: add --path media")
            console.print(f"target {engine_url} (its CPU and RSS are not measured)")
        else:
            extra_env: dict[str, str] = {}
            port = _free_port()
            if options.path == "full":
                full, extra_env = await _start_full_path(port, mark_echo, options.knowledge_passages)
                carrier = full.carrier
                if receiver is not None:
                    await receiver.start()
                    extra_env["CALLAGENT_OUTBOUND_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES"] = "true"
            extra_env["CALLAGENT_PROVIDERS__STT_ENGINE"] = stt_name
            engine = EngineProcess(emulators, port=port, extra_env=extra_env)
            await engine.ready()
            engine_url, engine_pid = engine.url, engine.proc.pid
            if receiver is not None and full is not None:
                async with aiohttp.ClientSession() as http:
                    await receiver.register(http, engine_url, full.headers)
            console.print(
                f"engine pid {engine_pid} on core {ENGINE_CORE if engine.pinned else 'any'}; "
                f"load side on core {LOAD_CORE if pinned_self else 'any'}; provider profile {options.profile!r}; "
                f"STT engine {stt_name}; STT punctuation: {options.stt_punctuation}; path {options.path}; "
                f"marks echoed: {mark_echo.mode}; event webhooks: {options.events}"
            )
        freeze_startup_heap()  # the emulators' and corpus' objects: a full GC would stall every callee
        levels = (
            list(range(options.capacity_start, options.capacity_max + 1, options.capacity_step))
            if options.capacity else [options.concurrency]
        )
        runs: list[dict[str, Any]] = []
        stage_samples: dict[str, list[float]] = {}
        held: int | None = None
        for level in levels:
            calls = level if options.capacity else options.calls
            with Progress(console=console, transient=True, disable=options.quiet) as bar:
                task = bar.add_task(f"{level} concurrent", total=calls)
                figures = await run_level(options, engine_url, engine_pid, level, calls,
                                          progress=lambda task=task: bar.advance(task), full=full)
            data = figures.as_json()
            data["stt_engine"] = stt_name if not options.target else None
            runs.append(data)
            add_stage_samples(figures, stage_samples)
            print_table(data, console)
            print_categories(data, console)
            print_turns(data, console)  # with the engine's account of each (not with --target: no /bench/turns)
            if options.capacity:
                added = None
                if options.capacity_unloaded_ms is not None:
                    added = data["load_added_ms"] = load_added(data, options.capacity_unloaded_ms)
                holds = level_holds(data, options, added)
                shown = added or {}
                console.print(f"{level} calls: p95 {data['turn_latency_ms']['p95']} ms; the load added p50 "
                              f"{shown.get('p50', '—')} / p95 {shown.get('p95', '—')} ms a turn "
                              f"(over {shown.get('n', 0)} of {data['turns_measured']} turns): "
                              f"{'held' if holds else 'missed'}")
                if not holds:
                    break
                held = level
        result: dict[str, Any] = runs[-1] if not options.capacity else {
            "levels": runs, "capacity": held, "headroom_ms": options.capacity_headroom_ms}
        if full is not None and not options.capacity:
            result.update(await _accounts(full, engine_url, emulators, receiver, console))
        if options.capacity:
            console.print(f"capacity: {held} concurrent calls held {capacity_rule(options)}"
                          if held else f"capacity: the first level already missed: {capacity_rule(options)}")
        if options.json_path:
            write_json(options.json_path, result)
        if options.plot_path:
            write_plot(options.plot_path, runs, stage_samples)
        last = runs[-1]
        ok = last["calls_failed"] == 0 and not (result.get("usage") or {}).get("mismatches")
        if result.get("events"):
            ok = ok and result["events"]["events_missing"] == 0 and result["events"]["bad_signatures"] == 0
        return 0 if ok else 1
    finally:
        if engine is not None:
            engine.stop()
        if carrier is not None:
            await carrier.close()
        if receiver is not None:
            await receiver.close()
        await emulators.close()


async def _accounts(full: FullPath, engine_url: str, emulators: Any, receiver: EventReceiver | None,
                    console: Any) -> dict[str, Any]:
    """After the calls: once every call has ended and its agent reported (the outcome's
    ``llm_tokens``), its usage and cost against the emulators' counts (bench.usage), and with
    ``--events on`` what the receiver got against what the call records say happened."""
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        async def settled() -> bool:
            details = await call_details(http, engine_url, full.headers)
            return all(d["status"] in TERMINAL_STATUSES and "llm_tokens" in (d.get("outcome") or {})
                       for d in details)

        if not await wait_for(settled, SETTLE_S):
            console.print(f"[yellow]some calls had not reported their usage {SETTLE_S:.0f} s after the run[/]")
        details = await call_details(http, engine_url, full.headers)
        served = {"prompt_tokens": emulators.llm.stats.prompt_tokens,
                  "completion_tokens": emulators.llm.stats.completion_tokens,
                  "unreported_prompt_tokens": emulators.llm.stats.unreported_prompt_tokens,
                  "unreported_completion_tokens": emulators.llm.stats.unreported_completion_tokens,
                  "tts_characters": emulators.tts.stats.characters,
                  "stt_seconds": emulators.stt.stats.audio_seconds}
        usage = out["usage"] = await usage_report(http, engine_url, full.headers, served, details)
        console.print(f"usage: {usage_line(usage)}")
        for line in usage["mismatches"]:
            console.print(f"[red]  mismatch: {line}[/]")
        if receiver is not None:
            expected = {d["id"]: expected_events(d) for d in details}
            want = sum(sum(c.values()) for c in expected.values())
            await wait_for(lambda: receiver.count() >= want, SETTLE_S)
            events = out["events"] = receiver.figures(expected)
            lag = events["delivery_lag_ms"]
            console.print(f"events: {events['events_received']}/{events['events_expected']} received, "
                          f"{events['events_missing']} missing, {events['bad_signatures']} bad signatures, "
                          f"{events['events_out_of_order_calls']} calls out of order; "
                          f"delivery lag p50 {lag['p50']} / p95 {lag['p95']} ms")
    return out


async def _start_full_path(port: int, mark_echo: MarkEcho,
                           knowledge_passages: int = 0) -> tuple[FullPath, dict[str, str]]:
    """The Telnyx emulator on this side, an organisation in a fresh store for the engine."""
    import tempfile

    from bench.callee import EmulatorCallee
    from bench.telnyx_emulator import start_emulator
    from control_plane.admin import create_organisation
    from control_plane.settings import Settings

    data_dir = tempfile.mkdtemp(prefix="callagent-bench-")
    holder: dict[str, FullPath] = {}
    carrier = await start_emulator(
        webhook_url=f"http://127.0.0.1:{port}/webhook/telnyx",
        callee_factory=EmulatorCallee(lambda call: holder["full"].pick(call),
                                      lambda call, result: holder["full"].on_result(call, result),
                                      mark_echo=mark_echo,
                                      reply_gaps=lambda call: holder["full"].reply_gaps(call)),
    )
    org, api_key = await create_organisation("bench", settings=Settings(data_dir=data_dir))
    agent_config: dict[str, Any] = {"personality": "friendly"}
    if knowledge_passages:
        from bench.kb import build_base

        await build_base(Settings(data_dir=data_dir), org.id, "bench", knowledge_passages)
        agent_config["knowledge_bases"] = ["bench"]
    full = holder["full"] = FullPath(carrier, api_key, agent_config)
    env = {
        "CALLAGENT_DATA_DIR": data_dir,
        "CALLAGENT_TELNYX_API_BASE": carrier.base_url,
        "TELNYX_PUBLIC_KEY": carrier.public_key_b64,
        "TELNYX_CONNECTION_ID": "bench-connection",
        "CALLAGENT_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CALLAGENT_API__CALL_STARTS_PER_MINUTE": "100000",
    }
    return full, env
