"""``callagent bench --webhooks RATE``: how fast the server acknowledges signed Telnyx webhooks.

The server runs as its own process pinned to the engine core (with the embedded store
unless ``DATABASE_URL`` is set). This side pre-signs every event (Ed25519, as Telnyx
signs) before the clock starts, then posts them at a fixed rate for a fixed time and
measures each acknowledgement: the durable write happens before the 2xx, so this is
the latency Telnyx sees. Target: p99 < 20 ms at 500 webhooks/s.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from typing import Any

import aiohttp
import orjson

from control_plane.telnyx.webhooks import generate_keypair, sign

from .procinfo import pin
from .runner import EngineProcess, _free_port
from .stats import summary

TARGET_P99_MS = 20.0


def _events(n: int, private_key: Any) -> list[tuple[bytes, dict[str, str]]]:
    now = int(time.time())
    out = []
    for i in range(n):
        body = orjson.dumps({
            "data": {
                "record_type": "event", "event_type": "call.initiated", "id": str(uuid.uuid4()),
                "occurred_at": "2026-11-26T12:00:00.000000Z",
                "payload": {"call_control_id": f"v3:bench-{i}", "call_leg_id": str(uuid.uuid4()),
                            "call_session_id": str(uuid.uuid4()), "connection_id": "bench",
                            "direction": "incoming", "from": "+15550100001", "to": "+15550100002",
                            "state": "parked", "client_state": None},
            },
            "meta": {"attempt": 1, "delivered_to": "http://127.0.0.1/webhook/telnyx"},
        })
        headers = sign(body, private_key, now)
        headers["Content-Type"] = "application/json"
        out.append((body, headers))
    return out


async def run_webhook_bench(rate: int = 500, seconds: float = 10.0, json_path: str | None = None) -> dict[str, Any]:
    pin({1})
    private_key, public_key = generate_keypair()
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="callagent-webhook-bench-")

    class _NoEmulators:  # the engine process needs provider URLs; no calls are made
        api_key = "unused"
        stt_url = tts_url = "ws://127.0.0.1:9/unused"
        llm_base_url = "http://127.0.0.1:9/v1"

    engine = EngineProcess(_NoEmulators(), port=port, extra_env={
        "CALLAGENT_DATA_DIR": data_dir, "TELNYX_PUBLIC_KEY": public_key,
        "CALLAGENT_PROVIDERS__MODE": "remote",
    })
    try:
        await engine.ready()
        events = _events(int(rate * seconds), private_key)
        url = f"{engine.url}/webhook/telnyx"
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        loop = asyncio.get_running_loop()

        async def post(session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]) -> None:
            t0 = loop.time()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append((loop.time() - t0) * 1000)

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
            tasks = []
            start = loop.time()
            for i, (body, headers) in enumerate(events):
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(post(session, body, headers)))
            await asyncio.gather(*tasks, return_exceptions=True)
            wall = loop.time() - start
    finally:
        engine.stop()
    figures: dict[str, Any] = {
        "rate_per_s": rate, "sent": len(events), "achieved_rate_per_s": round(len(events) / wall, 1),
        "ack_latency_ms": summary(latencies), "statuses": statuses,
        "target_p99_ms": TARGET_P99_MS,
    }
    p99 = figures["ack_latency_ms"]["p99"]
    figures["pass"] = p99 is not None and p99 < TARGET_P99_MS and statuses.get(200, 0) == len(events)
    print(json.dumps(figures, indent=2))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(figures, fh, indent=2)
    return figures
