"""GET /api/calls/export and /api/campaigns/{id}/export: every call of the organisation with its
turns, outcome and cost, streamed as JSON Lines or CSV; nothing of another organisation's."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import orjson

from control_plane.api import export
from control_plane.store import Call, Turn, utcnow

from .helpers import make_campaign


async def _calls(repo, org_id, n, *, campaign_id=None, start=None):
    start = start or utcnow() - timedelta(hours=1)
    made = []
    for i in range(n):
        at = start + timedelta(seconds=i)
        call = await repo.create_call(Call(
            id=uuid4(), org_id=org_id, direction="outbound", to_number=f"+1415555{i:04d}",
            from_number="+14155550100", status="completed", created_at=at, updated_at=at, answered_at=at,
            ended_at=at + timedelta(seconds=30), campaign_id=campaign_id, summary=f"call {i}",
            outcome={"resolved": i % 2 == 0}, cost_amount=Decimal("0.0125"), cost_currency="USD"))
        await repo.upsert_turn(Turn(call_id=call.id, org_id=org_id, index=0, caller_text="=HYPERLINK(\"x\")",
                                    agent_text=f"answer {i}", latency={"turn_ms": 310}, created_at=at))
        made.append(call)
    return made


async def test_export_streams_every_call_of_the_organisation_only(h, monkeypatch):
    monkeypatch.setattr(export, "PAGE", 7)  # several pages: the stream is written page by page
    org, headers = await h.org("A")
    other, other_headers = await h.org("B")
    repo = await h.cp.repository()
    mine = await _calls(repo, org.id, 20)
    await _calls(repo, other.id, 3)

    response = await h.client.get("/api/calls/export", headers=headers)
    assert response.status == 200 and response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in (await response.read()).splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(str(c.id) for c in mine)
    first = next(r for r in lines if r["id"] == str(mine[0].id))
    assert first["turns"][0]["agent_text"] == "answer 0" and first["turns"][0]["latency"] == {"turn_ms": 310}
    assert first["outcome"] == {"resolved": True} and first["cost"] == {"amount": "0.0125", "currency": "USD"}
    assert first["to"] == "+14155550000" and first["duration_s"] == 30.0

    window = {"from": mine[5].created_at.isoformat(), "to": mine[10].created_at.isoformat(), "format": "csv"}
    response = await h.client.get("/api/calls/export", params=window, headers=headers)
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert sorted(r["id"] for r in rows) == sorted(str(c.id) for c in mine[5:10])
    row = rows[0]
    assert row["to"].startswith("+1415555") and row["cost_amount"] == "0.0125" and row["turns"] == "1"
    assert row["transcript"] == 'caller: =HYPERLINK("x")\nagent: answer ' + row["summary"].split()[-1]
    assert orjson.loads(row["outcome"]) in ({"resolved": True}, {"resolved": False})

    theirs = await h.client.get("/api/calls/export", headers=other_headers)
    assert len((await theirs.read()).splitlines()) == 3
    bad = await h.client.get("/api/calls/export", params={"format": "xml"}, headers=headers)
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "validation_error"


async def test_campaign_export_is_the_campaigns_calls_and_scoped(h):
    org, headers = await h.org("A")
    _, other_headers = await h.org("B")
    repo = await h.cp.repository()
    campaign = await make_campaign(repo, org.id, "spring")
    in_campaign = await _calls(repo, org.id, 4, campaign_id=campaign.id)
    await _calls(repo, org.id, 2)
    path = f"/api/campaigns/{campaign.id}/export"
    lines = (await (await h.client.get(path, headers=headers)).read()).splitlines()
    assert sorted(orjson.loads(line)["id"] for line in lines) == sorted(str(c.id) for c in in_campaign)
    assert (await h.client.get(path, headers=other_headers)).status == 404


def test_csv_cells_that_would_run_as_formulas_are_neutralised():
    assert export._cell("=1+1") == "'=1+1" and export._cell("@SUM(A1)") == "'@SUM(A1)"
    assert export._cell("+14155550100") == "+14155550100"  # a phone number stays a number
    assert export._cell("-3.5") == "-3.5" and export._cell("+cmd|' /C calc'!A0") == "'+cmd|' /C calc'!A0"
    assert export._cell(None) == "" and export._cell("plain") == "plain"


def test_formula_starts_after_a_separator_are_neutralised_too_and_every_cell_is_quoted():
    hostile = {
        "a;=HYPERLINK(\"http://x\")": "a;'=HYPERLINK(\"http://x\")",  # ';' splits cells in decimal-comma locales
        "x\t@SUM(A1)": "x\t'@SUM(A1)",
        "x\r-cmd|' /C calc'!A0": "x\r'-cmd|' /C calc'!A0",
        "caller: hi\n=1+1": "caller: hi\n'=1+1",
        "ok; +cmd": "ok; '+cmd",
        "\t=1": "'\t'=1",
        "a;-5;+1 415": "a;-5;+1 415",  # numbers after a separator stay numbers
    }
    for cell, safe in hostile.items():
        assert export._cell(cell) == safe, cell
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow([export._cell(v) for v in ("1", "plain", "a;=1")])
    assert buffer.getvalue() == '"1","plain","a;\'=1"\r\n'


async def test_the_csv_export_quotes_every_cell(h):
    org, headers = await h.org("A")
    await _calls(await h.cp.repository(), org.id, 1)
    text = await (await h.client.get("/api/calls/export", params={"format": "csv"}, headers=headers)).text()
    header, row = text.split("\r\n")[:2]
    assert header.startswith('"id","created_at",') and row.startswith('"') and ',"1",' in row
