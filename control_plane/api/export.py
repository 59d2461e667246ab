"""Bulk export of calls with their turns, outcome and cost: JSON Lines or CSV, streamed.

Pages of the same keyset query as ``GET /api/calls`` (newest first) are written as they are read,
so an export of any size holds one page in memory. Only the key's organisation's calls.
CSV cells a spreadsheet would run as a formula (``=``, ``@``, ``+``/``-`` not followed by a
number, tab, CR, also right after a ``;`` ``,`` tab, CR or LF, where some spreadsheets start a new
cell) are prefixed with ``'`` and every cell is quoted (OWASP's advice): transcripts are what
callers said.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..context import control_plane as _cp
from ..errors import ApiError, parse_query
from ..store import Call, Repository, Turn
from .handlers import _org, _uuid_param
from .schemas import CallOut, TurnOut

PAGE = 200
CSV_COLUMNS = (
    "id", "created_at", "direction", "status", "from", "to", "campaign_id", "answered_at", "ended_at", "duration_s",
    "hangup_cause", "amd_result", "summary", "outcome", "cost_amount", "cost_currency", "turns", "transcript",
)
_NUMBER = re.compile(r"^[+-]?[0-9][0-9 .]*$")


class ExportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: datetime | None = Field(None, alias="from", description="created_at >= from (ISO 8601; UTC if no offset)")
    to: datetime | None = Field(None, description="created_at < to")
    format: Literal["jsonl", "csv"] = "jsonl"

    @field_validator("from_", "to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("date out of range") from None


class ExportedCall(CallOut):
    turns: list[TurnOut]


# A formula start at the cell's start or after a separator some spreadsheet splits cells on
# (``;`` in locales with a decimal comma, tab, CR, LF): a quote goes in front of it.
_FORMULA = re.compile(r"(^|[;,\t\r\n])(\s*)(?=[=@]|[+-](?![0-9][0-9 .]*(?:$|[;,\t\r\n])))")


def _cell(value: Any) -> str:
    text = "" if value is None else value if isinstance(value, str) else str(value)
    if not text or _NUMBER.match(text):
        return text
    text = _FORMULA.sub(r"\1\2'", text)
    return "'" + text if text[0] in "\t\r" else text


def csv_row(call: Call, turns: Sequence[Turn]) -> list[str]:
    out = CallOut.fields_of(call)
    transcript = "\n".join(
        line for t in turns for line in (f"caller: {t.caller_text}" if t.caller_text else "",
                                          f"agent: {t.agent_text}" if t.agent_text else "") if line)
    values = {
        **{k: out[k] for k in ("id", "direction", "status", "from", "to", "campaign_id", "duration_s",
                               "hangup_cause", "amd_result", "summary")},
        "created_at": call.created_at.isoformat(),
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "outcome": orjson.dumps(call.outcome).decode() if call.outcome is not None else None,
        "cost_amount": call.cost_amount, "cost_currency": call.cost_currency, "turns": len(turns),
        "transcript": transcript,
    }
    return [_cell(values[c]) for c in CSV_COLUMNS]


async def _stream(request: web.Request, repo: Repository, org_id: UUID, query: ExportQuery,
                  campaign_id: UUID | None, name: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8" if query.format == "csv" else "application/x-ndjson",
        "Content-Disposition": f'attachment; filename="{name}.{query.format}"',
        "Cache-Control": "no-store",
    })
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    if query.format == "csv":
        writer.writerow(CSV_COLUMNS)
        await response.write(buffer.getvalue().encode())
    after: tuple[datetime, UUID] | None = None
    while True:
        page = await repo.list_calls(org_id, campaign_id=campaign_id, since=query.from_, until=query.to,
                                     limit=PAGE, after=after)
        chunk = bytearray()
        for call in page.calls:
            turns = await repo.list_turns(call.id)
            if query.format == "csv":
                buffer.seek(0)
                buffer.truncate()
                writer.writerow(csv_row(call, turns))
                chunk += buffer.getvalue().encode()
            else:
                record = ExportedCall(**CallOut.fields_of(call), turns=[TurnOut.of(t) for t in turns])
                chunk += record.model_dump_json(by_alias=True).encode() + b"\n"
        if chunk:
            await response.write(bytes(chunk))
        if page.next_cursor is None:
            break
        after = page.next_cursor
    await response.write_eof()
    return response


async def export_calls(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, ExportQuery)
    repo = await _cp(request).repository()
    return await _stream(request, repo, _org(request).id, query, None, "calls")


async def export_campaign_calls(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, ExportQuery)
    campaign_id = _uuid_param(request, "campaign_id", "campaign")
    cp = _cp(request)
    repo = await cp.repository()
    campaigns = await cp.campaigns.store()
    if await campaigns.get(_org(request).id, campaign_id) is None:
        raise ApiError(404, "not_found", "no such campaign")
    return await _stream(request, repo, _org(request).id, query, campaign_id, f"campaign-{campaign_id}")
