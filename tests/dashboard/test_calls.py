"""The call list (filters, keyset pages), the call detail (transcript, waterfall, outcome)
and the live-calls feed, through aiohttp's test client."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import orjson

from control_plane.dashboard.context import Dashboard
from control_plane.dashboard.live import LiveFeed
from control_plane.dashboard.waterfall import WIDTH, waterfalls
from control_plane.services import ControlPlane
from control_plane.store import Turn, utcnow
from tests.control_plane.conftest import make_settings
from tests.control_plane.fakes import harness

from .helpers import LATENCY, secret_of, sign_in, write_call, write_turns

_DETAIL_LINK = re.compile(r'href="/dashboard/calls/([0-9a-f-]{36})"')
_NEXT = re.compile(r'href="(/dashboard/calls\?[^"]*cursor=[^"]*)" rel="next"')


async def _signed_in(h, name: str = "Org"):  # type: ignore[no-untyped-def]
    org, headers = await h.org(name)
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    return org


async def test_the_list_pages_through_every_call_once_with_filters_kept(settings):
    settings = settings.model_copy(update={"dashboard": settings.dashboard.model_copy(update={"page_size": 5})})
    async with harness(settings) as h:
        org = await _signed_in(h)
        other = await h.org("other")
        repo = await h.cp.repository()
        base = datetime(2026, 3, 1, 12, tzinfo=UTC)
        outbound = []
        for i in range(12):
            call = await write_call(repo, org.id, direction="outbound" if i % 3 else "inbound",
                                    created_at=base + timedelta(minutes=i))
            if i % 3:
                outbound.append(call.id)
        await write_call(repo, other[0].id, created_at=base)
        seen: list[str] = []
        url = "/dashboard/calls?direction=outbound"
        while url:
            text = await (await h.client.get(url.replace("&amp;", "&"))).text()
            seen += _DETAIL_LINK.findall(text)
            match = _NEXT.search(text)
            url = match.group(1) if match else ""
            if url:
                assert "direction=outbound" in url
        assert seen == [str(c) for c in reversed(outbound)]


async def test_status_and_date_filters(h):
    org = await _signed_in(h)
    repo = await h.cp.repository()
    day = datetime(2026, 3, 1, 12, tzinfo=UTC)
    failed = await write_call(repo, org.id, status="failed", created_at=day)
    done_next_day = await write_call(repo, org.id, created_at=day + timedelta(days=1))
    text = await (await h.client.get("/dashboard/calls?status=failed")).text()
    assert _DETAIL_LINK.findall(text) == [str(failed.id)]
    text = await (await h.client.get("/dashboard/calls?from=2026-03-02&to=2026-03-02")).text()
    assert _DETAIL_LINK.findall(text) == [str(done_next_day.id)]
    text = await (await h.client.get("/dashboard/calls?to=2026-03-01")).text()
    assert _DETAIL_LINK.findall(text) == [str(failed.id)]


async def test_bad_filters_are_a_clear_400_without_echo(h):
    await _signed_in(h)
    for query, message in (("status=<b>bogus</b>", "status must be one of"),
                           ("direction=sideways", "direction must be outbound or inbound"),
                           ("from=yesterday", "from must be a date"),
                           ("cursor=%3Cscript%3E", "page link is not valid")):
        response = await h.client.get(f"/dashboard/calls?{query}")
        assert response.status == 400, query
        text = await response.text()
        assert message in text
        assert "<b>bogus" not in text and "sideways" not in text and "yesterday" not in text
        assert "<script>" not in text


async def test_call_detail_shows_transcript_waterfall_barge_in_and_outcome(h):
    org = await _signed_in(h)
    repo = await h.cp.repository()
    call = await write_call(repo, org.id)
    await write_turns(repo, call)
    await repo.update_call(call.id, lambda c: c.model_copy(update={
        "summary": "Moved the appointment to Tuesday.", "outcome": {"rescheduled": True},
        "recording_url": "https://recordings.example.com/r/1.mp3", "cost_amount": "0.0420",
        "cost_currency": "USD"}))
    text = await (await h.client.get(f"/dashboard/calls/{call.id}")).text()
    assert "Yes! How can I help you today?" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert(1)" not in text
    assert text.count("<div class=\"waterfall\"") == 2
    assert text.count("<rect") == 12  # six stages a turn
    assert "612 ms to first audio" in text and "1,210 ms to first audio" in text
    assert text.count("barge-in: agent interrupted") == 1
    # How the second turn ended (the first has no account: no badge)
    assert text.count("ended: ") == 1 and "ended: hold_ran_out (unsure words), by pitch, merged" in text
    assert "Moved the appointment to Tuesday." in text and "rescheduled" in text
    assert 'href="https://recordings.example.com/r/1.mp3"' in text
    assert "0.0420 USD" in text


async def test_only_https_recording_links_are_made_links(h):
    org = await _signed_in(h)
    repo = await h.cp.repository()
    call = await write_call(repo, org.id)
    await repo.update_call(call.id, lambda c: c.model_copy(update={"recording_url": "javascript:alert(1)"}))
    text = await (await h.client.get(f"/dashboard/calls/{call.id}")).text()
    assert "javascript:" not in text


def test_waterfall_stages_run_end_to_end_on_the_slowest_turns_scale():
    slow = {**LATENCY, "turn_latency_ms": 1210.0, "stages_ms": {**LATENCY["stages_ms"], "llm_first_token": 850.0}}
    fast, slower, empty = waterfalls([LATENCY, slow, {}])
    assert empty is None
    assert [b.stage for b in fast.bars] == ["endpointing", "stt", "llm_first_token", "first_chunk",
                                             "tts_first_audio", "send"]
    assert [b.start_ms for b in fast.bars] == [0.0, 180.0, 220.0, 470.0, 500.0, 595.0]
    assert fast.scale_ms == slower.scale_ms == 1212.0  # the slow turn's stages add up to 1212
    end = slower.bars[-1]
    assert abs(end.x + end.width - WIDTH) < 0.01
    assert abs(fast.bars[-1].x + fast.bars[-1].width - 612 / 1212 * WIDTH) < 0.01


def test_waterfall_ignores_junk_figures():
    (fall,) = waterfalls([{"stages_ms": {"stt": "12", "llm_first_token": -5, "send": True, "tts_first_audio": 40}}])
    assert [b.stage for b in fall.bars] == ["tts_first_audio"]


async def test_live_feed_sends_a_call_appearing_changing_and_ending(h):
    org, _ = await h.org()
    other, _ = await h.org("other")
    repo = await h.cp.repository()
    feed = LiveFeed(org.id, limit=50)
    assert await feed.poll(repo, utcnow()) == {"live": [], "ended": []}
    assert await feed.poll(repo, utcnow()) is None  # nothing changed: no event
    await write_call(repo, other.id, status="answered")  # another organisation's: never shown
    call = await write_call(repo, org.id, status="initiated", answered=False)
    first = await feed.poll(repo, utcnow())
    assert [(r["id"], r["status"], r["duration_s"]) for r in first["live"]] == [(str(call.id), "initiated", None)]
    now = utcnow()
    await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "answered",
                                                                   "answered_at": now - timedelta(seconds=5)}))
    await repo.upsert_turn(Turn(call_id=call.id, org_id=org.id, index=0, latency=LATENCY, created_at=now))
    second = await feed.poll(repo, now)
    row = second["live"][0]
    assert row["status"] == "answered" and row["last_turn_ms"] == 612 and row["ticking"]
    assert 5.0 <= row["duration_s"] < 6.0
    assert await feed.poll(repo, now + timedelta(seconds=3)) is None  # only the duration moved
    await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "completed", "ended_at": now}))
    third = await feed.poll(repo, now)
    assert third["live"] == []
    assert [(r["id"], r["status"], r["ticking"]) for r in third["ended"]] == [(str(call.id), "completed", False)]


async def test_live_stream_is_server_sent_events_of_the_orgs_calls(h):
    org = await _signed_in(h)
    repo = await h.cp.repository()
    call = await write_call(repo, org.id, status="answered")
    response = await h.client.get("/dashboard/calls/live")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    lines = []
    while len(lines) < 2:
        lines.append((await response.content.readline()).decode().rstrip("\n"))
    assert lines[0] == "event: calls"
    payload = orjson.loads(lines[1].removeprefix("data: "))
    assert [r["id"] for r in payload["live"]] == [str(call.id)]
    response.close()


async def test_detail_of_an_unknown_call_is_404(h):
    await _signed_in(h)
    response = await h.client.get(f"/dashboard/calls/{uuid.uuid4()}")
    assert response.status == 404
    assert "No such call" in await response.text()


async def test_live_stream_ends_when_the_instance_drains(tmp_path):
    async with harness(make_settings(tmp_path, dashboard={"live_interval_s": 0.05})) as h:
        await _signed_in(h)
        response = await h.client.get("/dashboard/calls/live")
        assert (await response.content.readline()).decode() == "event: calls\n"
        await h.cp.begin_drain()
        rest = await response.content.read()  # returns only once the server ends the stream
        assert rest.startswith(b"data: ")


async def test_shutdown_wakes_a_paused_stream_at_once(tmp_path):
    cp = ControlPlane(make_settings(tmp_path))
    dash = Dashboard(cp)
    assert not dash.stopping
    paused = asyncio.create_task(dash.pause(3600))
    await asyncio.sleep(0)
    await dash.close()
    await paused  # would hang for an hour without the wake-up
    assert dash.stopping


async def test_last_turn_latencies_reads_each_calls_latest_turn_in_one_query(h):
    org, _ = await h.org()
    repo = await h.cp.repository()
    first = await write_call(repo, org.id, status="answered")
    second = await write_call(repo, org.id, status="answered")
    silent = await write_call(repo, org.id, status="answered")
    for index, ms in enumerate((400.0, 900.0, 650.0)):
        await repo.upsert_turn(Turn(call_id=first.id, org_id=org.id, index=index,
                                    latency={"turn_latency_ms": ms}, created_at=utcnow()))
    await repo.upsert_turn(Turn(call_id=second.id, org_id=org.id, index=0, latency={"turn_latency_ms": 300.0},
                                created_at=utcnow()))
    last = await repo.last_turn_latencies([first.id, second.id, silent.id])
    assert last == {first.id: {"turn_latency_ms": 650.0}, second.id: {"turn_latency_ms": 300.0}}
    assert await repo.last_turn_latencies([]) == {}


async def test_a_new_live_stream_lists_the_calls_that_ended_in_the_last_ten_minutes(h):
    org, _ = await h.org()
    other, _ = await h.org("other")
    repo = await h.cp.repository()
    now = utcnow()
    recent = await write_call(repo, org.id, created_at=now - timedelta(minutes=3))  # ended 2:20 ago
    await write_call(repo, org.id, created_at=now - timedelta(minutes=30))  # ended long ago
    await write_call(repo, other.id, created_at=now - timedelta(minutes=3))
    first = await LiveFeed(org.id, limit=50).poll(repo, now)
    assert [(r["id"], r["status"]) for r in first["ended"]] == [(str(recent.id), "completed")]


class _LiveSetReadJustBefore:
    """A repository whose live-call read happened just before ``call`` ended."""

    def __init__(self, repo, call):  # type: ignore[no-untyped-def]
        self._repo, self._call = repo, call

    async def list_live_calls(self, org_id, *, limit):  # type: ignore[no-untyped-def]
        return [self._call]

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self._repo, name)


async def test_a_call_ending_between_the_first_reads_is_shown_ended_not_both(h):
    org, _ = await h.org()
    repo = await h.cp.repository()
    call = await write_call(repo, org.id, status="answered", created_at=utcnow() - timedelta(minutes=1))
    await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "completed", "ended_at": utcnow()}))
    first = await LiveFeed(org.id, limit=50).poll(_LiveSetReadJustBefore(repo, call), utcnow())
    assert first["live"] == [] and [r["id"] for r in first["ended"]] == [str(call.id)]
