"""``callagent bench --clock virtual``: the calls scenario on virtual time, in one process.

The engine (the server ``build_server`` makes for ``callagent serve``, as the real bench's engine
process runs it), the provider emulators and the simulated callees all run on one
:class:`~bench.virtual_time.VirtualTimeLoop`: when nothing is ready, the clock jumps to the next timer.
A turn's latency is then what the engine's rules and the provider profile's delays make it, with no
CPU time and no load in it, the same on every run on any machine. It answers which turns wait and
why, which replies are premature, which turns are missed; how fast the engine is and how many calls
a core holds are the real clock's questions.

Only the media path: the same agent and media server as the full path, whose REST start, dial,
webhooks and store decide nothing in turn-taking (their accounts are the real bench's: usage,
``--events``). Options that would measure the machine are refused (:func:`unsupported`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from control_plane.settings import Settings
from engine.providers.stt_engines import ENGINES, UNKNOWN, stt_engine

from .emulators.server import load_corpus_utterances, start_emulators
from .engine_server import build_bench_server
from .report import on_virtual_clock, print_categories, print_table, print_turns, write_json, write_plot
from .runner import CALLERS, BenchOptions, _scripts, add_stage_samples, engine_environment, run_level
from .virtual_time import VirtualTimeLoop

HEADER = ("virtual clock: each latency is the engine's decisions plus the provider profile's delays, "
          "with no CPU time, no load and no capacity in it; the same on every run")


def unsupported(options: BenchOptions) -> list[str]:
    """Why ``options`` cannot run on the virtual clock, one line per option (none: they can)."""
    problems = []
    if options.capacity:
        problems.append("--capacity finds how many calls a core holds: the virtual clock spends no CPU time")
    if options.target:
        problems.append("--target measures a server in another process, whose time does not follow this clock")
    if options.path != "media":
        problems.append("--path full: the virtual clock runs the media path only (the same agent and media "
                        "server; REST, dialing, webhooks and the store decide nothing in turn-taking)")
    if options.events != "off":
        problems.append("--events needs the full path: use the real clock")
    if options.knowledge_passages:
        problems.append("--knowledge needs the full path: use the real clock")
    return problems


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """``variables`` over the process environment while the settings are read, as the real bench
    gives them to its engine process over the operator's own environment."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def virtual_options(**changes: Any) -> BenchOptions:
    """Bench options for the virtual clock: the media path, each script once, all at once."""
    return BenchOptions(**{"clock": "virtual", "path": "media", "calls": 0, "concurrency": 0, "ramp_up_s": 0.0,
                           "quiet": True, **changes})


def resolved(options: BenchOptions) -> BenchOptions:
    """``options`` with ``calls`` 0 as each script once and ``concurrency`` 0 as every call at once."""
    calls = options.calls or len(_scripts(options.categories, options.callers))
    return dataclasses.replace(options, calls=calls, concurrency=options.concurrency or calls)


async def run_virtual(options: BenchOptions, *, progress: Any = None,
                      samples: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """Every call of ``options`` on the running loop, which must be a :class:`VirtualTimeLoop`: the
    figures as the real bench's JSON has them, less the machine's (``report.on_virtual_clock``).
    ``samples``, when given, gets the per-stage times for the plot."""
    if not isinstance(asyncio.get_running_loop(), VirtualTimeLoop):
        raise RuntimeError("run_virtual runs on a VirtualTimeLoop")
    problems = unsupported(options)
    if problems:
        raise ValueError("; ".join(problems))
    stt_name = stt_engine(options.stt_engine).name
    if stt_name == UNKNOWN.name:
        raise ValueError(f"unknown STT engine {options.stt_engine!r}; known: {', '.join(ENGINES)}")
    options = resolved(options)
    options.mark_echo_policy  # noqa: B018 (a bad mode fails here, before anything starts)
    wall0 = time.monotonic()
    known = [pair for root in CALLERS[options.callers] for pair in load_corpus_utterances(root)]
    emulators = await start_emulators(options.profile, known_utterances=known,
                                      stt_punctuation=options.stt_punctuation)
    try:
        with tempfile.TemporaryDirectory(prefix="callagent-vbench-") as data_dir:
            with _environment({"CALLAGENT_DATA_DIR": data_dir, **engine_environment(emulators),
                               "CALLAGENT_PROVIDERS__STT_ENGINE": stt_name}):
                settings = Settings()
            server = await build_bench_server(settings)
            runner = web.AppRunner(server.app, access_log=None)
            try:
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                figures = await run_level(options, f"http://127.0.0.1:{port}", None, options.concurrency,
                                          options.calls, progress=progress)
            finally:
                await runner.cleanup()
                await server.close()
    finally:
        await emulators.close()
    if samples is not None:
        add_stage_samples(figures, samples)
    data = on_virtual_clock(figures.as_json())
    data.update(stt_engine=stt_name, wall_s=round(time.monotonic() - wall0, 1),
                virtual_s=round(asyncio.get_running_loop().time(), 1))
    return data


def unloaded_latencies(options: BenchOptions) -> dict[tuple[str, str], float]:
    """Each (script, step)'s turn latency for ``options``' callers on the virtual clock, each script
    once: what the providers and the turn rules take with no load at all, the baseline
    ``--capacity`` measures the load against. Runs on a loop of its own (not from a running one)."""
    baseline = virtual_options(profile=options.profile, stt_engine=options.stt_engine,
                               categories=options.categories, callers=options.callers,
                               mark_echo=options.mark_echo, mark_echo_late_s=options.mark_echo_late_s,
                               stt_punctuation=options.stt_punctuation)
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        data = runner.run(run_virtual(baseline))
    latencies = {(t["script"], t["step"]): t["latency_ms"] for t in data["turns"] if t["latency_ms"] is not None}
    if not latencies:
        raise ValueError("the unloaded run measured no turn: nothing to size against")
    return latencies


def run_virtual_bench(options: BenchOptions) -> int:
    """``callagent bench --clock virtual``: run, print the report, write ``--json`` and ``--plot``; exit
    status 0 when no call failed."""
    from rich.console import Console
    from rich.progress import Progress

    options = resolved(options)
    console = Console()
    console.print(HEADER, highlight=False)
    console.print(f"provider profile {options.profile!r}; STT engine {stt_engine(options.stt_engine).name}; "
                  f"STT punctuation: {options.stt_punctuation}; callers: {options.callers}; path media; "
                  f"marks echoed: {options.mark_echo}", highlight=False)
    samples: dict[str, list[float]] = {}

    async def main() -> dict[str, Any]:
        with Progress(console=console, transient=True, disable=options.quiet) as bar:
            task = bar.add_task("calls on the virtual clock", total=options.calls)
            return await run_virtual(options, progress=lambda: bar.advance(task), samples=samples)

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        data = runner.run(main())
    print_table(data, console)
    print_categories(data, console)
    print_turns(data, console)
    console.print(f"{options.calls} calls: {data['virtual_s']} s of virtual time in {data['wall_s']} s of wall time",
                  highlight=False)
    if options.json_path:
        write_json(options.json_path, data)
    if options.plot_path:
        write_plot(options.plot_path, [data], samples)
    return 0 if data["calls_failed"] == 0 else 1
