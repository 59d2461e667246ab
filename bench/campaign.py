"""Campaign bench: a whole outbound campaign against the Telnyx emulator, checked from both sides.

``run_campaign_bench(contacts, concurrency, calls_per_minute)`` starts the emulator (time-scaled
rings and AMD, callees that answer and hang up after ``call_s``, a few busy, unanswered and
voicemail numbers), the control plane app with its dialer on a local port (SQLite in a
temporary directory, or PostgreSQL with ``database_url``), creates a campaign through the REST
API, uploads the contacts as CSV, starts it and waits for it to complete. Then it counts, from
the emulator's own dial log and from the database:

* ``duplicate_dials``: dials the emulator accepted beyond the attempts the database recorded
  for the number (and any command_id accepted twice): must be 0;
* ``lost_contacts``: uploaded contacts not in exactly one terminal state, plus recorded
  attempts the emulator never saw: must be 0;
* ``dials_per_minute`` over the paced part of the run (the first ``contacts`` dials) and
  ``pacing_error_pct`` against ``calls_per_minute``; ``completion_s`` (start -> completed);
  ``outcomes`` (human, busy, no_answer, voicemail, ...) and ``statuses``; ``max_live_calls``.

``python -m bench.campaign --contacts 1000 --json out.json`` runs it from a shell.

The emulator runs in a process of its own (``emulator_process``), the app, its dialer and its
webhook processing in this one. On a 2-core machine that whole loop - Telnyx emulated, about
six signed webhooks a call, media streams - tops out near 1250 dials a minute (the webhook
path is most of the app's CPU, the dialer a small part); the default of 1200 a minute stays
under it, so ``pacing_error_pct`` measures the dialer, not the machine. More dialers:
``python -m control_plane.campaigns.worker`` processes against PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench.telnyx_emulator import NumberBehaviour, start_emulator

AGENT = {"personality": "friendly", "voice": "Telnyx.NaturalHD.astra", "language": "en-US"}
CALLER_IDS = ["+14155550100", "+14155550101", "+14155550102", "+14155550103"]
KEYS = ("duplicate_dials", "lost_contacts", "dials_per_minute", "pacing_error_pct", "completion_s", "outcomes")


class _QuietCallee:
    """Answers, stays silent (no media frames: cheap) and hangs up after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def run(self, ws: Any, call: Any) -> None:
        await asyncio.sleep(self.seconds)


class _LocalEmulator:
    """The emulator in this process (``emulator_process=False``)."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.api_key, self.base_url, self.public_key_b64 = emulator.api_key, emulator.base_url, emulator.public_key_b64

    async def dial_log(self) -> list[dict[str, Any]]:
        return [{"to": e.to, "command_id": e.command_id, "at": e.at} for e in self.emulator.dial_log]

    async def close(self) -> None:
        await self.emulator.close()


class _EmulatorProcess:
    """The emulator in a process of its own (the default: the bench's app gets a core to itself)."""

    def __init__(self, process: Any, url: str, public_key_b64: str) -> None:
        self.process, self.url = process, url
        self.api_key, self.base_url, self.public_key_b64 = "emulator-key", f"{url}/v2", public_key_b64

    @classmethod
    async def start(cls, contacts: int, call_s: float, time_scale: float) -> _EmulatorProcess:
        import base64
        import os
        import subprocess
        import sys

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        from control_plane.telnyx.webhooks import public_key_b64

        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        port = _free_port()
        config = {"port": port, "contacts": contacts, "call_s": call_s, "time_scale": time_scale,
                  "key": base64.b64encode(raw).decode()}
        process = subprocess.Popen(
            [sys.executable, "-c", "from bench.campaign import _emulator_main; _emulator_main()"],
            env={**os.environ, "CAMPAIGN_BENCH_EMULATOR": json.dumps(config)},
            cwd=Path(__file__).resolve().parents[1])
        self = cls(process, f"http://127.0.0.1:{port}", public_key_b64(key))
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/_emulator/dial_log") as response:
                        if response.status == 200:
                            return self
                if process.poll() is not None:
                    raise RuntimeError("the emulator process exited")
                await asyncio.sleep(0.1)
        raise RuntimeError("the emulator process did not come up")

    async def dial_log(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/_emulator/dial_log") as response:
            return (await response.json())["data"]

    async def close(self) -> None:
        self.process.terminate()
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.process.wait, 10)
        except Exception:  # noqa: BLE001
            self.process.kill()


def _emulator_main() -> None:
    """Entry point of the emulator process (config in ``CAMPAIGN_BENCH_EMULATOR``)."""
    import base64
    import os
    import signal

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    config = json.loads(os.environ["CAMPAIGN_BENCH_EMULATOR"])

    async def main() -> None:
        emulator = await _start_emulator(config["contacts"], config["call_s"], config["time_scale"],
                                         port=config["port"],
                                         private_key=Ed25519PrivateKey.from_private_bytes(
                                             base64.b64decode(config["key"])))
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await emulator.close()

    asyncio.run(main())


async def _start_emulator(contacts: int, call_s: float, time_scale: float, **kwargs: Any) -> Any:
    emulator = await start_emulator(
        time_scale=time_scale, default_behaviour=NumberBehaviour(ring_s=1.0),
        callee_factory=lambda call: _QuietCallee(60.0 if call.behaviour.answer == "voicemail" else call_s), **kwargs)
    for i in range(contacts):
        if _behaviour(i) != "human":
            emulator.set_number_behaviour(_number(i), _behaviour(i))
    return emulator


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


async def run_campaign_bench(contacts: int = 1000, concurrency: int = 100, calls_per_minute: int = 1200,
                             json_path: str | Path | None = None, *, call_s: float = 1.0, time_scale: float = 0.05,
                             database_url: str | None = None, redis_url: str | None = None,
                             emulator_process: bool = True, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run one campaign end to end; returns (and writes to ``json_path``) the figures."""
    from control_plane.app import CONTROL_PLANE_KEY, create_app
    from control_plane.auth import issue_api_key
    from control_plane.crypto import generate_key
    from control_plane.settings import Settings

    logging.getLogger("control_plane").setLevel(logging.ERROR)
    data_dir = Path(tempfile.mkdtemp(prefix="callagent-campaign-bench-"))
    schema = f"campaign_bench_{secrets.token_hex(4)}" if database_url else None
    emulator: Any = (await _EmulatorProcess.start(contacts, call_s, time_scale) if emulator_process
                     else _LocalEmulator(await _start_emulator(contacts, call_s, time_scale)))
    runner = None
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
        if schema:
            values["store"] = {"schema_name": schema, "pool_max_size": 20}
        settings = Settings(_env_file=None, **values)
        app = create_app(settings)
        runner = aiohttp.web.AppRunner(app, access_log=None)
        await runner.setup()
        await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
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
        store = await cp.campaigns.store()
        rows = await store.contacts(uuid.UUID(campaign_id))
        figures = _figures(await emulator.dial_log(), rows, report["accepted"], contacts, calls_per_minute)
        peak = await _peak_live_calls(store, uuid.UUID(campaign_id))
        figures.update({
            "contacts": contacts, "concurrency": concurrency, "calls_per_minute": calls_per_minute,
            "completed": status.get("status") == "completed", "completion_s": round(completion_s, 2),
            "upload_s": round(upload_s, 2), "max_live_calls": peak, "calls_placed": status.get("calls_placed"),
            "successful_calls": status.get("successful_calls"), "cost": status.get("cost"),
            "backend": "postgres" if database_url else "sqlite", "redis": redis_url is not None,
            "time_scale": time_scale, "call_s": call_s, "emulator_process": emulator_process,
        })
    finally:
        if runner is not None:
            await runner.cleanup()
        await emulator.close()
        if schema and database_url:
            import asyncpg

            conn = await asyncpg.connect(database_url)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures


async def _peak_live_calls(store: Any, campaign_id: uuid.UUID) -> int:
    """Most calls of the campaign alive at once, from the call rows (created -> ended)."""
    rows = await store.repo._fetch("SELECT created_at, ended_at FROM calls WHERE campaign_id = $1", campaign_id)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.campaign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--calls-per-minute", type=int, default=1200)
    parser.add_argument("--call-s", type=float, default=1.0, help="how long a person stays on the line")
    parser.add_argument("--time-scale", type=float, default=0.05, help="emulated delays (ring, AMD) multiplier")
    parser.add_argument("--database-url", help="PostgreSQL (a temporary schema); default: SQLite in a temp dir")
    parser.add_argument("--redis-url")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--in-process-emulator", action="store_true", help="run the emulator in this process")
    args = parser.parse_args(argv)
    figures = asyncio.run(run_campaign_bench(
        args.contacts, args.concurrency, args.calls_per_minute, args.json, call_s=args.call_s,
        time_scale=args.time_scale, database_url=args.database_url, redis_url=args.redis_url,
        emulator_process=not args.in_process_emulator))
    print(json.dumps(figures, indent=2, sort_keys=True))
    if figures["duplicate_dials"] or figures["lost_contacts"] or not figures["completed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
