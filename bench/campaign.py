"""Campaign bench: a whole outbound campaign against the Telnyx emulator, checked from both sides,
with the people who answer talking to the agent while the dialer runs.

``run_campaign_bench(contacts, concurrency, calls_per_minute)`` starts the far side (the Telnyx
emulator with time-scaled rings and AMD, a few busy, unanswered and voicemail numbers, and
the STT/LLM/TTS emulators), the control plane app with its dialer *and the call agent on
every media stream* (``callagent.wiring``: the real provider clients pointed at the
emulators, as ``callagent bench`` runs them) on a local port (SQLite in a temporary
directory, or PostgreSQL with ``database_url``), creates a campaign through the REST API,
uploads the contacts as CSV, starts it and waits for it to complete. Then it counts, from
the emulator's own dial log and from the database:

* ``duplicate_dials``: dials the emulator accepted beyond the attempts the database recorded
  for the number (and any command_id accepted twice): must be 0;
* ``lost_contacts``: uploaded contacts not in exactly one terminal state, plus recorded
  attempts the emulator never saw: must be 0;
* ``dials_per_minute`` over the paced part of the run (the first ``contacts`` dials) and
  ``pacing_error_pct`` against ``calls_per_minute``; ``completion_s`` (start -> completed);
  ``outcomes`` (human, busy, no_answer, voicemail, ...) and ``statuses``; ``max_live_calls``.

**Turn latency while the dialer runs.** ``talk_ratio`` (default 1) of the people who answer
play a recorded corpus call (``bench.callee.EmulatorCallee``, round robin over the ``plain``
question-and-answer scripts: 2-4 questions, about 32 s a call); the rest stay silent and hang
up after ``call_s``; machines and busy/unanswered numbers behave as before. The callee
measures at the carrier edge, like ``callagent bench``: ``turn_latency_ms`` {p50, p95, p99, n}
(last voiced caller frame sent -> first voiced agent frame received), ``turns`` (turns
measured), ``missed_turns`` (a question with no reply), ``premature_replies``;
``engine_turn_latency_ms`` is the engine's own account of the same turns, ``conversations``
/ ``conversations_completed`` / ``conversation_s`` the calls. The figures span the whole
run: nearly all turns happen while the dialer is dialing; the last half minute is the tail
of the last calls.

The emulator runs in a process of its own (``emulator_process``, pinned to core 1 where
there is one), the app, its dialer, its webhook processing and the agents in this one. On a
2-core machine the dialing loop alone - Telnyx emulated, about six signed webhooks a call,
media streams, callees silent - tops out near 1250 dials a minute (the webhook path is most
of the app's CPU, the dialer a small part); so with ``talk_ratio=0`` (no agent runs) the
default pace is 1200 a minute. With conversations, a call that talks holds its line about
32 s, so ``concurrency`` lines carry at most ``concurrency / 27`` dials a second (85 % of
the numbers are people): at 1200 a minute the concurrency cap, not the pacer, would set the
rate, and ``pacing_error_pct`` would measure the cap. The default pace when callees talk is
``1.8 * concurrency`` a minute (180 at 100 lines): about 80 lines busy, 20 % under the cap,
and on the 2-core machine about 40 % of a core for the app and 25 % for the far side over a
run (measured at 300 contacts), so neither the cap nor the CPU sets the rate and both the
pacing and the turn latency measure the product. A 1000-contact run then takes about six
minutes. The figures say when a run was not like that: ``concurrency_capped``
(``max_live_calls`` reached ``concurrency``), ``app_cpu_pct`` / ``load_cpu_pct`` (each process's
CPU over the run, in % of one core) and ``cpu_bound`` (either above 90 %). Other machines,
paces and mixes: ``calls_per_minute`` and ``talk_ratio``.

``python -m bench.campaign --contacts 1000 --json out.json`` runs it from a shell
(``--talk-ratio 0`` for the dialer alone at 1200 a minute). More dialers:
``python -m control_plane.campaigns.worker`` processes against PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import secrets
import shutil
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.telnyx_emulator import NumberBehaviour, start_emulator
from bench.usage import usage_line, usage_report

AGENT = {"personality": "friendly", "voice": "Telnyx.NaturalHD.astra", "language": "en-US"}
CALLER_IDS = ["+14155550100", "+14155550101", "+14155550102", "+14155550103"]
KEYS = ("duplicate_dials", "lost_contacts", "dials_per_minute", "pacing_error_pct", "completion_s", "outcomes",
        "turn_latency_ms", "turns", "missed_turns")
TALK_CATEGORIES = ("plain",)
"""Corpus categories the talking callees play: plain question and answer, no barge-ins or pauses."""
QUIET_CALLS_PER_MINUTE = 1200
TALK_DIALS_PER_LINE = 1.8
"""Default dials a minute per concurrent line when callees talk (180/min at 100 lines)."""
LOAD_CORE = 1


def default_calls_per_minute(talk_ratio: float, concurrency: int = 100) -> int:
    """The pace that measures the dialer (see the module docstring): 1200/min with silent callees;
    ``1.8 * concurrency`` a minute (capped at 1200) when callees talk."""
    if talk_ratio <= 0:
        return QUIET_CALLS_PER_MINUTE
    return max(1, min(QUIET_CALLS_PER_MINUTE, round(TALK_DIALS_PER_LINE * concurrency)))


class _QuietCallee:
    """Answers, stays silent (no media frames: cheap) and hangs up after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def run(self, ws: Any, call: Any) -> None:
        await asyncio.sleep(self.seconds)


class _Callees:
    """The emulator's callee factory: machines stay silent until the app hangs up, ``talk_ratio``
    of the people who answer play a corpus call (round robin over ``categories``) through
    :class:`bench.callee.EmulatorCallee`, the others stay silent and hang up after ``call_s``.
    Keeps each conversation's measurement (as plain data: it crosses a process boundary)."""

    def __init__(self, call_s: float, talk_ratio: float, categories: tuple[str, ...] = TALK_CATEGORIES) -> None:
        from bench.callee import EmulatorCallee
        from bench.corpus.model import load_corpus

        self.call_s, self.talk_ratio = call_s, talk_ratio
        self.scripts = ([s for s in load_corpus() if s.answer == "human" and s.category in categories]
                        if talk_ratio > 0 else [])
        if talk_ratio > 0 and not self.scripts:
            raise ValueError(f"no corpus calls in categories {categories}")
        self.people = 0
        self.talks = 0
        self.measurements: list[dict[str, Any]] = []
        self._talking = EmulatorCallee(self._next_script, self._record)

    def __call__(self, call: Any) -> Any:
        if call.behaviour.answer == "voicemail":
            return _QuietCallee(60.0)
        k, self.people = self.people, self.people + 1
        # spread the talkers evenly: person k talks when the running share crosses a whole number
        if self.scripts and int((k + 1) * self.talk_ratio + 1e-9) > int(k * self.talk_ratio + 1e-9):
            return self._talking(call)
        return _QuietCallee(self.call_s)

    def _next_script(self, call: Any) -> Any:
        script = self.scripts[self.talks % len(self.scripts)]
        self.talks += 1
        return script

    def _record(self, call: Any, result: Any) -> None:
        self.measurements.append({
            "script": result.script, "completed": bool(result.completed) and result.error is None,
            "error": result.error, "seconds": time.time() - call.answered_at if call.answered_at else None,
            "turns": [{"expect": t.expect, "latency_ms": t.latency_ms, "missed": t.missed, "premature": t.premature}
                      for t in result.turns],
        })


class _Load:
    """The far side of the bench in one event loop: the Telnyx emulator with its callees and,
    when callees talk, the STT/LLM/TTS emulators the app's agent uses."""

    def __init__(self, emulator: Any, callees: _Callees, providers: Any) -> None:
        self.emulator, self.callees, self.providers = emulator, callees, providers

    @classmethod
    async def start(cls, contacts: int, call_s: float, time_scale: float, talk_ratio: float, profile: str,
                    providers_port: int = 0, **kwargs: Any) -> _Load:
        callees = _Callees(call_s, talk_ratio)
        providers = None
        if talk_ratio > 0:
            from bench.corpus.model import CORPUS_DIR
            from bench.emulators.server import load_corpus_utterances, start_emulators

            providers = await start_emulators(profile, port=providers_port,
                                              known_utterances=load_corpus_utterances(CORPUS_DIR))
        try:
            emulator = await start_emulator(
                time_scale=time_scale, default_behaviour=NumberBehaviour(ring_s=1.0), callee_factory=callees, **kwargs)
        except BaseException:
            if providers is not None:
                await providers.close()
            raise
        for i in range(contacts):
            if _behaviour(i) != "human":
                emulator.set_number_behaviour(_number(i), _behaviour(i))
        return cls(emulator, callees, providers)

    def llm_usage(self) -> dict[str, float]:
        """What the emulators served: the LLM's tokens as it reported them, the TTS characters and
        STT audio seconds they received (what real providers would bill)."""
        stats = self.providers.llm.stats if self.providers is not None else None
        p = self.providers
        return {"prompt_tokens": stats.prompt_tokens if stats else 0,
                "completion_tokens": stats.completion_tokens if stats else 0,
                "unreported_prompt_tokens": stats.unreported_prompt_tokens if stats else 0,
                "unreported_completion_tokens": stats.unreported_completion_tokens if stats else 0,
                "tts_characters": p.tts.stats.characters if p else 0,
                "stt_seconds": p.stt.stats.audio_seconds if p else 0.0}

    def provider_urls(self) -> dict[str, str] | None:
        p = self.providers
        return None if p is None else {"stt_url": p.stt_url, "tts_url": p.tts_url, "llm_base_url": p.llm_base_url}

    async def close(self) -> None:
        await self.emulator.close()
        if self.providers is not None:
            await self.providers.close()


class _LocalEmulator:
    """The emulator in this process (``emulator_process=False``)."""

    pid = None

    def __init__(self, load: _Load) -> None:
        self.load = load
        emulator = self.emulator = load.emulator
        self.api_key, self.base_url, self.public_key_b64 = emulator.api_key, emulator.base_url, emulator.public_key_b64
        self.providers = load.provider_urls()

    async def dial_log(self) -> list[dict[str, Any]]:
        return [{"to": e.to, "command_id": e.command_id, "at": e.at} for e in self.emulator.dial_log]

    async def conversations(self) -> tuple[list[dict[str, Any]], int]:
        return list(self.load.callees.measurements), self.load.callees.talks

    async def llm_usage(self) -> dict[str, float]:
        return self.load.llm_usage()

    async def close(self) -> None:
        await self.load.close()


class _EmulatorProcess:
    """The far side (:class:`_Load`) in a process of its own, pinned to core 1 where there is one
    (the default: the bench's app gets the other core to itself)."""

    def __init__(self, process: Any, url: str, public_key_b64: str, results_url: str,
                 providers: dict[str, str] | None) -> None:
        self.process, self.url, self.results_url, self.providers = process, url, results_url, providers
        self.pid = process.pid
        self.api_key, self.base_url, self.public_key_b64 = "emulator-key", f"{url}/v2", public_key_b64

    @classmethod
    async def start(cls, contacts: int, call_s: float, time_scale: float, talk_ratio: float = 0.0,
                    profile: str = "fast") -> _EmulatorProcess:
        import base64
        import os
        import subprocess
        import sys

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        from bench.procinfo import pin
        from control_plane.telnyx.webhooks import public_key_b64

        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        port, results_port, providers_port = _free_port(), _free_port(), _free_port()
        config = {"port": port, "results_port": results_port, "providers_port": providers_port,
                  "contacts": contacts, "call_s": call_s, "time_scale": time_scale, "talk_ratio": talk_ratio,
                  "profile": profile, "key": base64.b64encode(raw).decode()}
        process = subprocess.Popen(
            [sys.executable, "-c", "from bench.campaign import _emulator_main; _emulator_main()"],
            env={**os.environ, "CAMPAIGN_BENCH_EMULATOR": json.dumps(config)},
            cwd=Path(__file__).resolve().parents[1])
        pin({LOAD_CORE}, process.pid)
        results_url = f"http://127.0.0.1:{results_port}/conversations"
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(results_url) as response:
                        if response.status == 200:
                            providers = (await response.json())["providers"]
                            return cls(process, f"http://127.0.0.1:{port}", public_key_b64(key), results_url,
                                       providers)
                if process.poll() is not None:
                    raise RuntimeError("the emulator process exited")
                await asyncio.sleep(0.1)
        process.kill()
        raise RuntimeError("the emulator process did not come up")

    async def dial_log(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/_emulator/dial_log") as response:
            return (await response.json())["data"]

    async def conversations(self) -> tuple[list[dict[str, Any]], int]:
        """The talking callees' measurements so far, and how many callees talk(ed)."""
        async with aiohttp.ClientSession() as http, http.get(self.results_url) as response:
            body = await response.json()
            return body["data"], body["talkers"]

    async def llm_usage(self) -> dict[str, float]:
        async with aiohttp.ClientSession() as http, http.get(self.results_url) as response:
            return dict((await response.json())["llm_usage"])

    async def close(self) -> None:
        self.process.terminate()
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.process.wait, 10)
        except Exception:
            self.process.kill()


def _emulator_main() -> None:
    """Entry point of the emulator process (config in ``CAMPAIGN_BENCH_EMULATOR``).

    Serves ``GET /conversations`` on ``results_port`` (once everything listens): the talking
    callees' measurements so far and the provider emulators' URLs."""
    import base64
    import os
    import signal

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    config = json.loads(os.environ["CAMPAIGN_BENCH_EMULATOR"])

    async def main() -> None:
        load = await _Load.start(config["contacts"], config["call_s"], config["time_scale"], config["talk_ratio"],
                                 config["profile"], providers_port=config["providers_port"], port=config["port"],
                                 private_key=Ed25519PrivateKey.from_private_bytes(base64.b64decode(config["key"])))

        async def conversations(request: web.Request) -> web.Response:
            return web.json_response({"data": load.callees.measurements, "talkers": load.callees.talks,
                                      "providers": load.provider_urls(), "llm_usage": load.llm_usage()})

        results = web.Application()
        results.router.add_get("/conversations", conversations)
        runner = web.AppRunner(results, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", config["results_port"]).start()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            await load.close()

    asyncio.run(main())


def _free_port() -> int:
    import socket

    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _number(i: int) -> str:
    return f"+1646{i:07d}"


def _behaviour(i: int) -> str:
    """5 % busy, 5 % no answer, 5 % voicemail, the rest people."""
    return {1: "busy", 2: "no_answer", 3: "voicemail"}.get(i % 20, "human")


async def run_campaign_bench(contacts: int = 1000, concurrency: int = 100, calls_per_minute: int | None = None,
                             json_path: str | Path | None = None, *, call_s: float = 1.0, time_scale: float = 0.05,
                             talk_ratio: float = 1.0, profile: str = "fast",
                             database_url: str | None = None, redis_url: str | None = None,
                             emulator_process: bool = True, timeout_s: float = 900.0) -> dict[str, Any]:
    """Run one campaign end to end; returns (and writes to ``json_path``) the figures.

    ``talk_ratio``: the share of answered people who hold a conversation with the agent (0: all
    silent, and no agent runs); ``calls_per_minute`` defaults to :func:`default_calls_per_minute`."""
    from bench.procinfo import cpu_seconds, own_cpu_seconds
    from callagent import build_server
    from control_plane.app import CONTROL_PLANE_KEY, METRICS_KEY, create_app
    from control_plane.auth import issue_api_key
    from control_plane.crypto import generate_key
    from control_plane.settings import Settings

    if not 0.0 <= talk_ratio <= 1.0:
        raise ValueError("talk_ratio must be between 0 and 1")
    if calls_per_minute is None:
        calls_per_minute = default_calls_per_minute(talk_ratio, concurrency)
    control_plane_log = logging.getLogger("control_plane")
    log_level = control_plane_log.level
    control_plane_log.setLevel(logging.ERROR)  # a campaign's worth of per-call lines would drown the figures
    data_dir = Path(tempfile.mkdtemp(prefix="callagent-campaign-bench-"))
    schema = f"campaign_bench_{secrets.token_hex(4)}" if database_url else None
    emulator: Any = (await _EmulatorProcess.start(contacts, call_s, time_scale, talk_ratio, profile)
                     if emulator_process
                     else _LocalEmulator(await _Load.start(contacts, call_s, time_scale, talk_ratio, profile)))
    runner = None
    providers = None
    cp = None
    try:
        port = _free_port()
        values: dict[str, Any] = {
            "data_dir": data_dir, "encryption_key": generate_key(), "lookup_hash_key": generate_key(),
            "database_url": database_url, "redis_url": redis_url,
            "redis_key_prefix": f"campaign-bench-{secrets.token_hex(4)}:",
            "telnyx_api_key": emulator.api_key, "telnyx_api_base": emulator.base_url,
            "telnyx_public_key": emulator.public_key_b64, "telnyx_connection_id": "bench",
            "server": {"public_url": f"http://127.0.0.1:{port}"},
            "api": {"call_starts_per_minute": max(100, calls_per_minute * 2)},
            "webhooks": {"poll_interval_s": 0.05},
            "campaigns": {"poll_interval_s": 0.1, "sweep_interval_s": 0.5, "outcome_grace_s": 1.0},
        }
        if emulator.providers:
            # The agent's STT, LLM and TTS are the emulators next to the callees (as `callagent bench`
            # runs them), reached over sockets by the real provider clients.
            values["providers"] = {"mode": "remote", "llm_model": "emulator", "llm_api_key": emulator.api_key,
                                   **emulator.providers}
        if schema:
            values["store"] = {"schema_name": schema, "pool_max_size": 20}
        settings = Settings(_env_file=None, **values)
        if emulator.providers:
            server = await build_server(settings, keep_turns=100_000)
            app, providers = server.app, server.providers
        else:  # nobody talks: no agent, no providers
            app = create_app(settings)
            app[METRICS_KEY].recent_turns = collections.deque(maxlen=100_000)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        cp = app[CONTROL_PLANE_KEY]
        repo = await cp.repository()
        org = await repo.create_organisation("campaign bench")
        _, secret = await issue_api_key(repo, org.id, "bench")
        headers = {"Authorization": f"Bearer {secret}"}
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            body = {"name": "bench", "agent_config": AGENT, "caller_numbers": CALLER_IDS,
                    "max_concurrent_calls": concurrency, "calls_per_minute": calls_per_minute, "ring_timeout_s": 20,
                    "retry": {"on": ["busy", "no_answer", "failed"], "max_attempts": 2, "backoff_s": 0.5},
                    "voicemail": {"action": "message", "message": "Hello {name}, please call us back."}}
            async with http.post(f"{base}/api/campaigns", json=body, headers=headers) as response:
                campaign = await response.json()
                assert response.status == 201, campaign
            campaign_id = campaign["id"]

            async def csv() -> Any:
                yield b"phone,name\n"
                for start in range(0, contacts, 1000):
                    yield "".join(f"{_number(i)},Person {i}\n"
                                  for i in range(start, min(contacts, start + 1000))).encode()

            upload_started = time.perf_counter()
            async with http.post(f"{base}/api/campaigns/{campaign_id}/contacts", data=csv(),
                                 headers={**headers, "Content-Type": "text/csv"}) as response:
                report = await response.json()
                assert response.status == 200, report
            upload_s = time.perf_counter() - upload_started
            started = time.perf_counter()
            cpu0 = (own_cpu_seconds(), cpu_seconds(emulator.pid) if emulator.pid else 0.0)
            async with http.post(f"{base}/api/campaigns/{campaign_id}/start", headers=headers) as response:
                assert response.status == 200, await response.text()
            status: dict[str, Any] = {}
            while time.perf_counter() - started < timeout_s:
                async with http.get(f"{base}/api/campaigns/{campaign_id}", headers=headers) as response:
                    status = await response.json()
                if status["status"] == "completed":
                    break
                await asyncio.sleep(0.2)
            completion_s = time.perf_counter() - started
            cpu1 = (own_cpu_seconds(), cpu_seconds(emulator.pid) if emulator.pid else 0.0)
        conversations, talkers = await emulator.conversations()
        for _ in range(50):  # a callee the agent hung up on reports as its stream closes
            if len(conversations) >= talkers:
                break
            await asyncio.sleep(0.1)
            conversations, talkers = await emulator.conversations()
        usage: dict[str, Any] | None = None
        if providers is not None:
            await _drain_agents(app)  # every agent has reported its usage
            async with aiohttp.ClientSession() as http:
                usage = await usage_report(http, base, headers, await emulator.llm_usage())
        store = await cp.campaigns.store()
        rows = await store.contacts(uuid.UUID(campaign_id))
        figures = _figures(await emulator.dial_log(), rows, report["accepted"], contacts, calls_per_minute)
        peak = await _peak_live_calls(store, uuid.UUID(campaign_id))
        figures.update(_conversation_figures(conversations, talkers, list(app[METRICS_KEY].recent_turns)))
        app_cpu = round(100 * (cpu1[0] - cpu0[0]) / completion_s, 1) if completion_s else None
        load_cpu = round(100 * (cpu1[1] - cpu0[1]) / completion_s, 1) if completion_s and emulator.pid else None
        figures.update({
            "contacts": contacts, "concurrency": concurrency, "calls_per_minute": calls_per_minute,
            "completed": status.get("status") == "completed", "completion_s": round(completion_s, 2),
            "upload_s": round(upload_s, 2), "max_live_calls": peak, "calls_placed": status.get("calls_placed"),
            "successful_calls": status.get("successful_calls"), "cost": status.get("cost"), "usage": usage,
            "backend": "postgres" if database_url else "sqlite", "redis": redis_url is not None,
            "time_scale": time_scale, "call_s": call_s, "emulator_process": emulator_process,
            "talk_ratio": talk_ratio, "provider_profile": profile if talk_ratio > 0 else None,
            "app_cpu_pct": app_cpu, "load_cpu_pct": load_cpu,
            "concurrency_capped": peak >= concurrency,
            "cpu_bound": any(c is not None and c > 90.0 for c in (app_cpu, load_cpu)),
        })
    finally:
        if runner is not None:
            if providers is not None:
                await _drain_agents(app)
            await runner.cleanup()
        if providers is not None:
            await providers.aclose()
        await emulator.close()
        if schema and database_url:
            import asyncpg

            conn = await asyncpg.connect(database_url)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        control_plane_log.setLevel(log_level)  # an in-process caller (a test) keeps its logging
    if json_path is not None:
        Path(json_path).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures


async def _drain_agents(app: Any, timeout_s: float = 20.0) -> None:
    """Wait until the media sessions have closed and their agents have reported (summary and
    outcome): a report written after the app's control plane closed would reopen its store."""
    from control_plane.app import METRICS_KEY
    from engine.conversation import agent

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not app[METRICS_KEY].sessions.live and not getattr(agent, "_background", ()):
            return
        await asyncio.sleep(0.1)


def _conversation_figures(conversations: list[dict[str, Any]], talkers: int,
                          engine_turns: list[dict[str, Any]]) -> dict[str, Any]:
    """Turn latency at the carrier edge (the callee's last voiced frame sent -> the agent's first
    voiced frame received), as ``callagent bench`` measures it; the engine's own figure beside it."""
    from bench.stats import summary

    turns = [t for c in conversations for t in c["turns"]]
    latencies = [t["latency_ms"] for t in turns if t["latency_ms"] is not None]
    engine = [t["turn_latency_ms"] for t in engine_turns if t.get("turn_latency_ms") is not None]
    return {
        "conversations": talkers,
        "conversations_completed": sum(1 for c in conversations if c["completed"]),
        "conversation_s": summary([c["seconds"] for c in conversations if c.get("seconds") is not None], (50, 95)),
        "turns": len(latencies),
        "turn_latency_ms": summary(latencies),
        "missed_turns": sum(1 for t in turns if t["missed"]),
        "premature_replies": sum(1 for t in turns if t["premature"]),
        "engine_turn_latency_ms": summary(engine),
    }


async def _peak_live_calls(store: Any, campaign_id: uuid.UUID) -> int:
    """Most calls of the campaign alive at once, from the call rows (created -> ended)."""
    rows = await store.db.fetch("SELECT created_at, ended_at FROM calls WHERE campaign_id = $1", campaign_id)
    edges = []
    for row in rows:
        edges.append((str(row["created_at"]), 1))
        if row["ended_at"] is not None:
            edges.append((str(row["ended_at"]), -1))
    live = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        live += step
        peak = max(peak, live)
    return peak


def _figures(log: list[dict[str, Any]], rows: list[Any], accepted: int, contacts: int,
             calls_per_minute: int) -> dict[str, Any]:
    dials_by_number = Counter(e["to"] for e in log)
    command_ids = Counter(e["command_id"] for e in log)
    attempts = {c.phone: c.attempts for c in rows}
    duplicate_dials = sum(max(0, n - attempts.get(number, 0)) for number, n in dials_by_number.items())
    duplicate_dials += sum(n - 1 for n in command_ids.values() if n > 1)
    terminal = {"completed", "failed", "dnc_skipped", "cancelled", "erased"}
    unseen = sum(max(0, attempts[c.phone] - dials_by_number.get(c.phone, 0)) for c in rows
                 if c.outcome != "dial_unconfirmed")
    lost = (contacts - len(rows)) + sum(1 for c in rows if c.status not in terminal) + unseen
    times = sorted(float(e["at"]) for e in log)[:contacts]
    rate = 60.0 * (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    return {
        "duplicate_dials": duplicate_dials,
        "lost_contacts": lost,
        "dials": len(log),
        "accepted_contacts": accepted,
        "dials_per_minute": round(rate, 1),
        "pacing_error_pct": round(abs(rate - calls_per_minute) / calls_per_minute * 100, 2),
        "outcomes": dict(sorted(Counter(c.outcome or "none" for c in rows).items())),
        "statuses": dict(sorted(Counter(c.status for c in rows).items())),
    }


def summary_lines(figures: dict[str, Any]) -> list[str]:
    """The printed summary: the headline figures, one a line (``KEYS``)."""
    lines = [f"{key:<18} {figures.get(key)}" for key in KEYS]
    lines.append(f"{'calls_per_minute':<18} {figures.get('calls_per_minute')} (talk_ratio {figures.get('talk_ratio')}, "
                 f"max_live_calls {figures.get('max_live_calls')}/{figures.get('concurrency')}, "
                 f"app cpu {figures.get('app_cpu_pct')} %, load cpu {figures.get('load_cpu_pct')} %)")
    usage = figures.get("usage")
    if usage:
        lines.append(f"{'usage':<18} {usage_line(usage)}")
        lines += [f"{'  mismatch':<18} {m}" for m in usage["mismatches"]]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.campaign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--calls-per-minute", type=int,
                        help=f"dialing pace (default {TALK_DIALS_PER_LINE} x concurrency, or "
                        f"{QUIET_CALLS_PER_MINUTE} with --talk-ratio 0)")
    parser.add_argument("--talk-ratio", type=float, default=1.0,
                        help="share of answered people who talk with the agent (0: all silent, no agent)")
    parser.add_argument("--profile", default="fast", help="provider emulators' latency profile")
    parser.add_argument("--call-s", type=float, default=1.0, help="how long a silent person stays on the line")
    parser.add_argument("--time-scale", type=float, default=0.05, help="emulated delays (ring, AMD) multiplier")
    parser.add_argument("--database-url", help="PostgreSQL (a temporary schema); default: SQLite in a temp dir")
    parser.add_argument("--redis-url")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--in-process-emulator", action="store_true", help="run the emulator in this process")
    args = parser.parse_args(argv)
    figures = asyncio.run(run_campaign_bench(
        args.contacts, args.concurrency, args.calls_per_minute, args.json, call_s=args.call_s,
        time_scale=args.time_scale, talk_ratio=args.talk_ratio, profile=args.profile,
        database_url=args.database_url, redis_url=args.redis_url, emulator_process=not args.in_process_emulator))
    print(json.dumps(figures, indent=2, sort_keys=True))
    if figures["duplicate_dials"] or figures["lost_contacts"] or not figures["completed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
