"""Erasing a whole organisation (DELETE /api/organisation, `callagent org erase`): afterwards no row
of the store names it or holds its data (its knowledge bases' passages, index entries and word
counts included), on SQLite and PostgreSQL, and the other organisation keeps everything."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from callagent.cli import main
from control_plane import admin
from control_plane.sessions import CallSession

from .fakes import harness
from .helpers import add_contact, dump_database, make_campaign, open_sealed

MARKER = "Zanzibarian"  # a word only the erased organisation's documents and transcripts hold
DOC = f"# Opening hours\n\nThe {MARKER} depot opens at 7 on Saturdays.\n".encode()


async def _fill(h: Any, headers: dict[str, str], tag: str) -> dict[str, Any]:
    """An organisation with what a real one leaves behind: a finished call with its events, turn,
    recording and session, a number, a campaign with a contact, a DNC entry, a webhook endpoint
    and a knowledge base with a document."""
    assert (await h.client.post("/api/webhooks/endpoints", json={"url": "https://hooks.example.com/in"},
                                headers=headers)).status == 201
    started = await (await h.start_call(headers, to="+14155550123")).json()
    ccid = started["call_control_id"]
    common = {"call_control_id": ccid, "from": "+14155550100", "to": "+14155550123"}
    await h.webhook("call.initiated", {**common, "direction": "outgoing"})
    await h.webhook("call.answered", common)
    await h.webhook("call.recording.saved", {**common, "recording_id": f"rec-{tag}",
                                             "recording_urls": {"mp3": "https://rec.example/1.mp3"}})
    await h.webhook("call.hangup", {**common, "hangup_cause": "normal_clearing"})
    await h.settle()
    await h.cp.recorder.record_turn(ccid, 0, caller_text=f"{MARKER}-{tag} hours?", agent_text="Seven.")
    await h.cp.sessions.save(CallSession(call_control_id=ccid, metadata={"tag": tag}))
    assert (await h.client.post("/api/numbers", json={"number": "+1312555" + str(uuid.uuid4().int)[:4]},
                                headers=headers)).status == 201
    assert (await h.client.post("/api/dnc", json={"phone": "+14155550999"}, headers=headers)).status == 201
    assert (await h.client.post("/api/knowledge-bases", json={"name": "faq"}, headers=headers)).status == 201
    put = await h.client.put("/api/knowledge-bases/faq/documents/hours.md", data=DOC,
                             headers={**headers, "Content-Type": "text/markdown"})
    assert put.status == 201, await put.text()
    return {"call": started, "ccid": ccid}


async def test_erasing_an_organisation_leaves_no_row_of_it_and_keeps_the_others(h):
    org, headers = await h.org("erased")
    other, other_headers = await h.org("kept")
    repo = await h.cp.repository()
    mine = await _fill(h, headers, "a")
    theirs = await _fill(h, other_headers, "b")
    campaign = await make_campaign(repo, org.id, "spring")
    await add_contact(repo, org.id, campaign.id, "+14155550124", {"name": "Ada"})

    before = open_sealed(await dump_database(repo), h.cp.keys.cipher)
    assert str(org.id) in before and f"{MARKER}-a" in before  # the checks below can fail
    assert (await h.client.post("/api/knowledge-bases/faq/search", json={"query": MARKER.lower()},
                                headers=other_headers)).status == 200

    # A confirmation is needed, and must be the organisation's own id.
    missing = await h.client.delete("/api/organisation", headers=headers)
    assert missing.status == 400
    wrong = await h.client.delete(f"/api/organisation?confirm={other.id}", headers=headers)
    assert wrong.status == 400 and (await wrong.json())["error"]["code"] == "confirmation_mismatch"

    # A call still up makes it wait (its rows would go from under the running call).
    live = await (await h.start_call(headers, to="+14155550125")).json()
    busy = await h.client.delete(f"/api/organisation?confirm={org.id}", headers=headers)
    assert busy.status == 409 and (await busy.json())["error"]["code"] == "organisation_busy"
    await h.webhook("call.hangup", {"call_control_id": live["call_control_id"], "from": "+14155550100",
                                    "to": "+14155550125", "hangup_cause": "normal_clearing"})
    await h.settle()

    response = await h.client.delete(f"/api/organisation?confirm={org.id}", headers=headers)
    assert response.status == 200, await response.text()
    receipt = await response.json()
    erased = receipt["erased"]
    assert receipt["organisation_id"] == str(org.id) and receipt["carrier_recordings"] == ["rec-a"]
    assert erased["calls"] == 2 and erased["turns"] == 1 and erased["call_events"] >= 4
    assert erased["knowledge_bases"] == 1 and erased["knowledge_documents"] == 1
    assert erased["knowledge_passages"] >= 1 and erased["campaign_contacts"] == 1
    assert erased["api_keys"] == 1 and erased["phone_numbers"] == 1 and erased["dnc_entries"] == 1
    assert receipt["sessions"] == 1

    after = open_sealed(await dump_database(repo), h.cp.keys.cipher)
    leftovers = [line for line in after.splitlines()
                 if str(org.id) in line or f"{MARKER}-a" in line or "rec-a" in line]
    assert leftovers == [], leftovers[:5]
    assert await h.cp.sessions.load(mine["ccid"]) is None
    # The key went with the organisation.
    assert (await h.client.get("/api/organisation", headers=headers)).status == 401
    # The other organisation keeps its calls, session and knowledge, still searchable.
    assert f"{MARKER}-b" in after
    assert await h.cp.sessions.load(theirs["ccid"]) is not None
    call = await h.client.get(f"/api/calls/{theirs['call']['call_id']}", headers=other_headers)
    assert call.status == 200
    hits = await (await h.client.post("/api/knowledge-bases/faq/search", json={"query": "saturdays depot"},
                                      headers=other_headers)).json()
    assert [hit["source"] for hit in hits["data"]] == ["hours.md"]


async def test_the_knowledge_index_forgets_the_erased_words(h):
    """The lexical index itself (FTS5 segments on SQLite, the GIN-indexed column on PostgreSQL)
    holds no word only the erased organisation's documents had."""
    org, headers = await h.org("erased")
    _, other_headers = await h.org("kept")
    word = "zq" + uuid.uuid4().hex[:12]  # only this test's erased document holds it
    await h.client.post("/api/knowledge-bases", json={"name": "faq"}, headers=headers)
    await h.client.put("/api/knowledge-bases/faq/documents/hours.md", data=DOC.replace(MARKER.encode(),
                                                                                       word.encode()),
                       headers={**headers, "Content-Type": "text/markdown"})
    await h.client.post("/api/knowledge-bases", json={"name": "faq"}, headers=other_headers)
    await h.client.put("/api/knowledge-bases/faq/documents/other.txt", data=b"Parcels ship on Mondays.",
                       headers={**other_headers, "Content-Type": "text/plain"})
    repo = await h.cp.repository()
    assert word.encode() in (await dump_database(repo)).encode()
    assert (await h.client.delete(f"/api/organisation?confirm={org.id}", headers=headers)).status == 200
    dump = await dump_database(repo)
    assert word not in dump.lower()
    if repo.dialect == "sqlite":  # the index's own segments, read raw
        async with repo.connection() as conn:
            blobs = await conn.fetch("SELECT block FROM knowledge_fts_data")
        assert not any(word.encode() in bytes(r["block"] or b"") for r in blobs)


async def test_cli_erases_an_organisation_after_confirmation(settings, capsys, monkeypatch):
    async with harness(settings) as h:
        org, headers = await h.org("erased")
        await h.client.post("/api/knowledge-bases", json={"name": "faq"}, headers=headers)
        await h.client.put("/api/knowledge-bases/faq/documents/hours.md", data=DOC,
                           headers={**headers, "Content-Type": "text/markdown"})
        assert (await h.start_call(headers)).status == 201  # never hung up: a call in a live state

    # The CLI opens the store itself, as an operator runs it: in a thread, on a loop of its own.
    monkeypatch.setattr("callagent.cli._checked_settings", lambda: settings)

    async def cli(*args: str) -> int:
        return await asyncio.to_thread(main, ["org", "erase", str(org.id), *args])

    assert await cli("--confirm", str(uuid.uuid4())) == 2
    assert "--confirm" in capsys.readouterr().err
    assert await cli("--confirm", str(org.id)) == 2
    assert "in progress" in capsys.readouterr().err
    assert await cli("--confirm", str(org.id), "--force") == 0
    out = capsys.readouterr().out
    assert "knowledge_bases: 1" in out and "calls: 1" in out
    assert await admin.get_organisation(org.id, settings=settings) is None
    assert await cli("--confirm", str(org.id)) == 2
    assert "no such organisation" in capsys.readouterr().err
