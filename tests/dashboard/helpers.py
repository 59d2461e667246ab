"""Shared by the dashboard tests: sign a test client in, read tokens off pages, write calls."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from control_plane.store import Call, StatusChange, Turn, utcnow

_HIDDEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def form_token(html: str) -> str:
    match = _HIDDEN.search(html)
    assert match, "no csrf_token field on the page"
    return match.group(1)


def page_token(html: str) -> str:
    match = _META.search(html)
    assert match, "no csrf-token meta on the page"
    return match.group(1)


async def sign_in(client: Any, api_key: str) -> Any:
    """Sign ``client`` in with ``api_key``; the response of the POST (a 303 on success)."""
    page = await client.get("/dashboard/signin")
    token = form_token(await page.text())
    return await client.post("/dashboard/signin", data={"csrf_token": token, "api_key": api_key},
                             allow_redirects=False)


async def session_token(client: Any) -> str:
    page = await client.get("/dashboard/calls")
    assert page.status == 200
    return page_token(await page.text())


def secret_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def write_call(repo: Any, org_id: uuid.UUID, *, status: str = "completed", direction: str = "outbound",
                     to: str = "+14155550123", created_at: datetime | None = None,
                     answered: bool = True, control_id: str | None = None) -> Call:
    now = created_at or utcnow()
    terminal = status in ("completed", "failed", "busy", "no_answer", "canceled")
    call = Call(id=uuid.uuid4(), org_id=org_id, direction=direction,  # type: ignore[arg-type]
                to_number=to if direction == "outbound" else "+14155550100",
                from_number="+14155550100" if direction == "outbound" else to,
                status=status,  # type: ignore[arg-type]
                status_history=(StatusChange(status=status, at=now, reason="test"),),  # type: ignore[arg-type]
                call_control_id=control_id or f"v3:{uuid.uuid4().hex}", created_at=now, updated_at=now,
                answered_at=now + timedelta(seconds=2) if answered and status != "queued" else None,
                ended_at=now + timedelta(seconds=40) if terminal else None)
    return await repo.create_call(call)


LATENCY = {"turn_latency_ms": 612.0, "engine_added_ms": 11.0, "speculative": False, "interrupted": False,
           "stages_ms": {"endpointing": 180.0, "stt": 40.0, "llm_first_token": 250.0, "first_chunk": 30.0,
                         "tts_first_audio": 95.0, "send": 17.0}}


async def write_turns(repo: Any, call: Call) -> None:
    await repo.upsert_turn(Turn(call_id=call.id, org_id=call.org_id, index=0, caller_text="Hi, is this the clinic?",
                                agent_text="Yes! How can I help you today?", latency=LATENCY, created_at=utcnow()))
    slow = {**LATENCY, "turn_latency_ms": 1210.0, "stages_ms": {**LATENCY["stages_ms"], "llm_first_token": 850.0}}
    await repo.upsert_turn(Turn(call_id=call.id, org_id=call.org_id, index=1,
                                caller_text="<script>alert(1)</script> I need to move my appointment",
                                agent_text="Sure, which day would suit you", interrupted=True, latency=slow,
                                created_at=utcnow(), end_reason="hold_ran_out", hold="unsure", contour=True,
                                speculation="kept", merged=True))
