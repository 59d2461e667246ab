"""The live-calls feed: what the dashboard's live panel shows, as server-sent events.

Each connection keeps a :class:`LiveFeed`. Every ``dashboard.live_interval_s`` it reads the
organisation's live calls from the store (so it sees calls of every instance, whichever
one handles their webhooks) and sends a ``calls`` event when something shown changed: a
call appeared, changed state, ended, or finished a turn. Durations tick in the browser
between events, so an unchanged panel costs one query and no bytes. A call that leaves the
live set is read once more and listed under ``ended`` with its final state; a new stream
starts with the calls that ended in the last ten minutes.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from ..store import Call, Repository

MAX_ENDED = 10
RECENT = timedelta(minutes=10)
"""Calls that ended this recently are listed as ended when a page opens (a reload after a
hang-up must still show how the call ended)."""
RECENT_SCAN = timedelta(hours=2)
"""...among the calls created this recently (the calls index bounds the read)."""
HEARTBEAT_S = 15.0


def _duration_s(call: Call, now: datetime) -> float | None:
    if call.answered_at is None:
        return None
    end = call.ended_at or now
    return max(0.0, (end - call.answered_at).total_seconds())


def call_row(call: Call, now: datetime, last_turn_ms: float | None) -> dict[str, Any]:
    number = call.to_number if call.direction == "outbound" else call.from_number
    return {"id": str(call.id), "direction": call.direction, "number": number or "(erased)",
            "status": call.status, "ticking": call.answered_at is not None and call.ended_at is None,
            "duration_s": _duration_s(call, now), "last_turn_ms": last_turn_ms,
            "hangup_requested": call.hangup_requested_at is not None}


def _last_turn_ms(latency: dict[str, Any] | None) -> float | None:
    value = (latency or {}).get("turn_latency_ms")
    return round(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _shape(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What decides whether an event is due: everything but the ticking duration."""
    return [(r["id"], r["status"], r["last_turn_ms"], r["hangup_requested"], r["ticking"]) for r in rows]


class LiveFeed:
    def __init__(self, org_id: UUID, limit: int) -> None:
        self.org_id = org_id
        self.limit = limit
        self._live_ids: set[UUID] = set()
        self._ended: deque[dict[str, Any]] = deque(maxlen=MAX_ENDED)
        self._sent: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] | None = None
        self._seeded = False

    async def _recently_ended(self, repo: Repository, now: datetime) -> list[Call]:
        page = await repo.list_calls(self.org_id, since=now - RECENT - RECENT_SCAN, limit=200)
        recent = [c for c in page.calls if c.terminal and c.ended_at is not None and c.ended_at >= now - RECENT]
        return sorted(recent, key=lambda c: c.ended_at)[-MAX_ENDED:]  # type: ignore[arg-type, return-value]

    async def poll(self, repo: Repository, now: datetime) -> dict[str, Any] | None:
        """The next event's payload, or ``None`` when the panel would not change."""
        calls = await repo.list_live_calls(self.org_id, limit=self.limit)
        ids = {c.id for c in calls}
        ended = [call for gone in self._live_ids - ids
                 if (call := await repo.get_call(self.org_id, gone)) is not None]  # scoped: this org's only
        if not self._seeded:
            self._seeded = True
            # (read after the live set: a call that ended in between is in both, and is ended)
            ended = await self._recently_ended(repo, now)
            calls = [c for c in calls if c.id not in {e.id for e in ended}]
            ids = {c.id for c in calls}
        answered = [c.id for c in (*calls, *ended) if c.answered_at is not None]
        last = await repo.last_turn_latencies(answered) if answered else {}
        live = [call_row(c, now, _last_turn_ms(last.get(c.id))) for c in calls]
        for call in ended:
            self._ended.appendleft(call_row(call, now, _last_turn_ms(last.get(call.id))))
        self._live_ids = ids
        ended_rows = list(self._ended)
        shape = (_shape(live), _shape(ended_rows))
        if shape == self._sent:
            return None
        self._sent = shape
        return {"live": live, "ended": ended_rows}


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


SSE_HEARTBEAT = b": keep-alive\n\n"
