"""``callagent call +1555...``: place one call through a running server and follow it live.

It is a client of the server's own REST API (``POST /api/calls/start``, then
``GET /api/calls/{id}``), so it works the same against a local-mode server (the bundled
Telnyx emulator answers) and a live one (a real phone rings). It prints each turn as the
server records it, with its latency and stages, then the call's end and summary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from control_plane.store import TERMINAL_STATUSES
from engine.turn_outcome import describe

POLL_S = 0.5


class CallError(Exception):
    """The server refused the call, or could not be reached: said in one line."""


@dataclass
class CallRequest:
    to: str
    from_: str
    personality: str | None = None
    prompt: str | None = None
    first_message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        agent: dict[str, Any] = dict(self.extra)
        if self.personality:
            agent["personality"] = self.personality
        if self.prompt:
            agent["system_prompt"] = self.prompt
        if self.first_message:
            agent["first_message"] = self.first_message
        body: dict[str, Any] = {"to": self.to, "from": self.from_}
        if agent:
            body["agent_config"] = agent
        return body


def describe_turn(turn: dict[str, Any]) -> list[str]:
    lines = [f"caller: {turn.get('caller_text') or ''}",
             f"agent:  {turn.get('agent_text') or ''}" + ("  (interrupted)" if turn.get("interrupted") else "")]
    latency = turn.get("latency") or {}
    if latency.get("turn_latency_ms") is not None:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in (latency.get("stages_ms") or {}).items() if v is not None)
        spec = " speculative" if latency.get("speculative") else ""
        lines.append(f"        turn latency {latency['turn_latency_ms']:.0f} ms{spec}"
                     + (f" ({stages})" if stages else ""))
    if turn.get("end_reason"):  # how the caller's turn ended (turns recorded before it was kept: none)
        outcome = {"end": turn["end_reason"], **{k: turn.get(k) for k in ("hold", "contour", "speculation", "merged")}}
        lines.append(f"        ended: {describe(outcome)}")
    return lines


async def place_and_follow(base_url: str, api_key: str, request: CallRequest, *, timeout_s: float,
                           out: Callable[[str], None] = print) -> str:
    """Start the call, print its turns as they are recorded, and return its final status."""
    headers = {"Authorization": f"Bearer {api_key}"}
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession(base_url, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=30)) as api:
            async with api.post("/api/calls/start", json=request.body()) as response:
                body = await _json(response)
                if response.status >= 300:
                    raise CallError(_explain(response.status, body))
            call_id = body["call_id"]
            out(f"call {call_id} to {request.to}: {body.get('status')}")
            shown, status, detail = 0, body.get("status"), {}
            while time.monotonic() - started < timeout_s:
                await asyncio.sleep(POLL_S)
                async with api.get(f"/api/calls/{call_id}") as response:
                    detail = await _json(response)
                    if response.status >= 300:
                        raise CallError(_explain(response.status, detail))
                if detail.get("status") != status:
                    status = detail.get("status")
                    out(f"[{time.monotonic() - started:6.1f}s] {status}")
                for turn in (detail.get("turns") or [])[shown:]:
                    for line in describe_turn(turn):
                        out(f"[{time.monotonic() - started:6.1f}s] {line}")
                    shown += 1
                if status in TERMINAL_STATUSES and (detail.get("summary") is not None or not detail.get("turns")
                                           or time.monotonic() - started > timeout_s - 5):
                    break
            else:
                out(f"still {status} after {timeout_s:.0f} s; follow it with GET /api/calls/{call_id}")
                return str(status)
            if detail.get("summary"):
                out(f"summary: {detail['summary']}")
            if detail.get("outcome"):
                out(f"outcome: {detail['outcome']}")
            return str(status)
    except aiohttp.ClientConnectionError as exc:
        raise CallError(f"cannot reach the server at {base_url} ({type(exc).__name__}); is `callagent serve` "
                        "running there?") from None


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _explain(status: int, body: dict[str, Any]) -> str:
    error: Any = body.get("error") if isinstance(body.get("error"), dict) else {}
    message = error.get("message") or f"HTTP {status}"
    if status == 401:
        return f"{message} (pass the organisation's API key with --api-key or CALLAGENT_API_KEY)"
    return f"{message} (HTTP {status}, {error.get('code', 'error')})"
