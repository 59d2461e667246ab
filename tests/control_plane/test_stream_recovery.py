"""A call outlives the stream (and the process) carrying it (issue 14, item 1).

Before: a call whose stream was lost stayed ``answered`` for ever, up and billed at Telnyx with
nobody talking, holding its campaign slot; ``streaming.stopped`` was ignored and no sweep
looked at answered calls. Every test here fails on that code (there was no recovery sweep).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from control_plane.pipeline import resumed_history
from control_plane.recovery import GIVEN_UP_REASON, LOST_REASON
from control_plane.sessions import CallSession
from control_plane.streamauth import verify_token
from control_plane.streamleases import MemoryStreamLeases

from .fakes import harness, telnyx_error
from .helpers import make_campaign


async def _answered_call(h: Any, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    call = await (await h.start_call(headers, **extra)).json()
    await h.webhook("call.answered", {"call_control_id": call["call_control_id"]})
    await h.settle()
    return call


def _for(h: Any, command: str, call: dict[str, Any]) -> list[dict[str, Any]]:
    """``command``s sent for this test's ``call`` (the PostgreSQL schema is shared by the session's tests)."""
    return [c for c in h.telnyx.named(command) if c["call_control_id"] == call["call_control_id"]]


async def _row(h: Any, call: dict[str, Any]) -> Any:
    repo = await h.cp.repository()
    return await repo.get_call_unscoped(uuid.UUID(call["call_id"]))


async def test_a_live_call_without_a_stream_is_reattached_once_and_a_dead_one_is_ended(h):
    org, headers = await h.org()
    repo = await h.cp.repository()
    campaign = await make_campaign(repo, org.id, "renewals")
    alive = await _answered_call(h, headers)
    dead = await _answered_call(h, headers, to="+14155550124", campaign_id=str(campaign.id))
    gone = await _answered_call(h, headers, to="+14155550125")
    streaming = await _answered_call(h, headers, to="+14155550126")
    h.telnyx.calls[dead["call_control_id"]] = {"is_alive": False}
    h.telnyx.calls[gone["call_control_id"]] = telnyx_error(422, "90018", "Call has already ended")
    await h.cp.recovery.opened(uuid.UUID(streaming["call_id"]))  # its stream is open here

    await h.cp.recovery.sweep()
    (start,) = _for(h, "streaming_start", alive)
    assert not any(_for(h, "streaming_start", c) for c in (dead, gone, streaming))
    token = start["stream_url"].partition("?token=")[2]
    assert str(verify_token(h.cp.keys.hasher, token)) == alive["call_id"]
    assert token.split(".")[1].startswith("r")  # marked as a re-attach: the agent resumes
    assert start["stream_auth_token"] == token
    for call in (dead, gone):
        row = await _row(h, call)
        assert row.status == "completed" and row.ended_at is not None
        assert row.status_history[-1].reason == LOST_REASON
    assert (await _row(h, alive)).status == "answered"
    store = await h.cp.campaigns.store()
    assert await store.live_calls(campaign.id) == 0  # the campaign's slot is free again

    # The re-attach holds the call until its stream arrives: no second streaming_start.
    await h.cp.recovery.sweep()
    assert len(_for(h, "streaming_start", alive)) == 1
    assert [len(_for(h, "get_call", c)) for c in (alive, dead, gone, streaming)] == [1, 1, 1, 0]


async def test_a_stream_that_never_comes_back_is_retried_then_the_call_is_hung_up(settings):
    settings = settings.model_copy(update={"streams": settings.streams.model_copy(update={"max_reattach": 2})})
    async with harness(settings) as h:
        _, headers = await h.org()
        call = await _answered_call(h, headers)
        now = [0.0]
        h.cp.recovery.leases = MemoryStreamLeases(clock=lambda: now[0])
        for attempt in (1, 2):
            await h.cp.recovery.sweep()
            assert len(_for(h, "streaming_start", call)) == attempt
            now[0] += settings.streams.attach_timeout_s + 1  # no stream arrived
        await h.cp.recovery.sweep()
        assert len(_for(h, "streaming_start", call)) == 2
        assert len(_for(h, "hangup", call)) == 1
        row = await _row(h, call)
        assert row.terminal and row.status_history[-1].reason == GIVEN_UP_REASON


async def test_a_call_that_just_ended_is_left_to_its_hangup_webhook(h):
    _, headers = await h.org()
    call = await _answered_call(h, headers)
    from control_plane.store import utcnow

    h.telnyx.calls[call["call_control_id"]] = {"is_alive": False, "end_time": utcnow().isoformat()}
    await h.cp.recovery.sweep()
    assert (await _row(h, call)).status == "answered"
    assert _for(h, "get_call", call) and not _for(h, "streaming_start", call)


async def test_a_hangup_webhook_telnyx_is_still_retrying_ends_the_call_not_the_sweep(h):
    # Under load the instance answered Telnyx's webhooks too slowly (> 2 s): the call.hangup of
    # a call that ended normally comes on a retry, 20 s after the end. The sweep (its stream
    # closed, Telnyx says is_alive false) used to end it as lost after 10 s; Telnyx retries a
    # webhook for up to 60 s, so the sweep leaves it to the webhook that long.
    from datetime import timedelta

    _, headers = await h.org()
    call = await _answered_call(h, headers)
    end = (await _row(h, call)).answered_at + timedelta(seconds=30)
    h.telnyx.calls[call["call_control_id"]] = {"is_alive": False, "end_time": end.isoformat()}
    counts = await h.cp.recovery.sweep(now=end + timedelta(seconds=20))
    assert (counts.deferred, counts.ended) == (1, 0)
    assert (await _row(h, call)).status == "answered"

    await h.webhook("call.hangup", {"call_control_id": call["call_control_id"], "hangup_cause": "normal_clearing",
                                    "hangup_source": "callee"})
    await h.settle()
    row = await _row(h, call)
    assert row.status == "completed" and row.status_history[-1].reason == "call.hangup:normal_clearing"

    # A hangup webhook that never comes: the call is ended once Telnyx cannot be retrying it any more.
    other = await _answered_call(h, headers, to="+14155550127")
    h.telnyx.calls[other["call_control_id"]] = {"is_alive": False, "end_time": end.isoformat()}
    grace = timedelta(seconds=h.cp.settings.streams.hangup_grace_s)
    await h.cp.recovery.sweep(now=end + grace + timedelta(seconds=1))
    row = await _row(h, other)
    assert row.status == "completed" and row.status_history[-1].reason == LOST_REASON and row.ended_at == end


async def test_a_call_that_ended_while_no_instance_looked_is_billed_to_its_real_end(h):
    # Its instance was killed mid-call; the callee hung up 30 s after answering, and the hangup's
    # webhook never made it (the instance was gone, retries ran out). A survivor sweeps 10 minutes
    # later: the call ends when Telnyx says it did, so its minutes (and its campaign contact's
    # cost) are not ten minutes of nobody talking.
    from datetime import timedelta

    from control_plane.pricing import answered_seconds

    org, headers = await h.org()
    repo = await h.cp.repository()
    campaign = await make_campaign(repo, org.id, "renewals")
    call = await _answered_call(h, headers, campaign_id=str(campaign.id))
    answered_at = (await _row(h, call)).answered_at
    end = answered_at + timedelta(seconds=30)
    h.telnyx.calls[call["call_control_id"]] = {"is_alive": False, "end_time": end.isoformat()}
    await h.cp.recovery.sweep(now=answered_at + timedelta(minutes=10))
    row = await _row(h, call)
    assert row.status == "completed" and row.status_history[-1].reason == LOST_REASON
    assert row.ended_at == end and answered_seconds(row.answered_at, row.ended_at) == 30  # not 600
    store = await h.cp.campaigns.store()
    assert await store.live_calls(campaign.id) == 0


# -- whole calls: the Telnyx emulator, the speech emulators, the real agent -------------------------

SCRIPT = "plain-01-order-status"
FAST = {"answer_grace_s": 0.0, "drop_grace_s": 0.2, "sweep_interval_s": 0.3, "lease_s": 1.5,
        "attach_timeout_s": 5.0}


def _scripted_callees() -> Any:
    from bench.callee import EmulatorCallee
    from bench.corpus.model import load_corpus

    script = next(s for s in load_corpus() if s.name == SCRIPT)
    return EmulatorCallee(lambda call: script, None)


def _agent_speaking(server: Any, ccid: str, not_in: set[int]) -> bool:
    from control_plane.app import METRICS_KEY

    return any(s.call_control_id == ccid and id(s) not in not_in and s.playout.frames_sent > 0
               for s in server.server.app[METRICS_KEY].sessions.live)


def _sessions_of(servers: Any, ccid: str) -> set[int]:
    from control_plane.app import METRICS_KEY

    return {id(s) for server in servers for s in server.server.app[METRICS_KEY].sessions.live
            if s.call_control_id == ccid}


def _streaming_starts(w: Any, ccid: str) -> int:
    return sum(1 for r in w.telnyx.requests if r.path.endswith("/actions/streaming_start") and ccid in r.path)


GAPS: list[float] = []


@pytest.mark.e2e
@pytest.mark.slow
async def test_a_dropped_stream_is_reattached_and_the_agent_goes_on_with_the_conversation(tmp_path):
    import asyncio

    from .conftest import make_settings
    from .live import eventually, world

    async with world(lambda **kw: make_settings(tmp_path, streams=FAST, **kw),
                     callee_factory=_scripted_callees()) as w:
        (server,) = w.servers
        call = await w.start_call(server)
        ccid, call_id = call["call_control_id"], uuid.UUID(call["call_id"])
        repo = await server.cp.repository()

        async def a_turn() -> Any:
            return await repo.list_turns(call_id)

        (first, *_) = await eventually(a_turn)
        before = _sessions_of(w.servers, ccid)
        asked = len(w.llm.conversations)
        loop = asyncio.get_running_loop()
        dropped_at = loop.time()
        await w.telnyx.board.stop_stream(w.telnyx.calls[ccid])  # streaming.stopped; the call stays up

        async def heard_again() -> bool:
            return _agent_speaking(server, ccid, before)

        await eventually(heard_again)
        GAPS.append(loop.time() - dropped_at)

        def resumed() -> list[dict[str, Any]] | None:
            return next((c for c in w.llm.conversations[asked:]
                         if any(m.get("content") == server.cp.settings.streams.recovery_line for m in c)), None)

        async def replied() -> Any:
            return resumed()

        conversation = await eventually(replied)
        said = [(m["role"], m.get("content")) for m in conversation]
        # The reply after the re-attach is made with the turns before the drop.
        assert ("user", first.caller_text) in said and ("assistant", first.agent_text) in said
        assert said.index(("user", first.caller_text)) < said.index(
            ("assistant", server.cp.settings.streams.recovery_line))
        assert _streaming_starts(w, ccid) == 1
        assert (await repo.get_call_unscoped(call_id)).status == "answered"
        print(f"stream drop -> agent heard again: {GAPS[-1]:.2f} s")


@pytest.mark.e2e
@pytest.mark.slow
async def test_an_instance_dies_and_exactly_one_other_picks_its_call_up(tmp_path, pg_schema, redis_prefix):
    import asyncio

    from .conftest import make_settings
    from .live import eventually, world

    shared = redis_prefix + uuid.uuid4().hex[:8] + ":"

    def settings_for(**kw: Any) -> Any:
        return make_settings(tmp_path, backend="postgres", pg_schema=pg_schema, redis_prefix=redis_prefix,
                             redis_key_prefix=shared, streams=FAST, **kw)

    async with world(settings_for, servers=3, callee_factory=_scripted_callees()) as w:
        doomed, *survivors = w.servers
        call = await w.start_call(doomed)
        ccid = call["call_control_id"]

        async def greeted() -> bool:
            return _agent_speaking(doomed, ccid, set())

        await eventually(greeted)
        # The instance dies: no more lease renewals, no sweeps, and its sockets go without cleanup.
        await doomed.cp.recovery.stop()

        async def no_cleanup(call_id: Any, value: str) -> None:
            return None

        doomed.cp.recovery.closed = no_cleanup  # type: ignore[method-assign]
        before = _sessions_of(w.servers, ccid)
        loop = asyncio.get_running_loop()
        died_at = loop.time()
        await w.telnyx.board.stop_stream(w.telnyx.calls[ccid])

        async def picked_up() -> Any:
            return next((s for s in survivors if _agent_speaking(s, ccid, before)), None)

        taker = await eventually(picked_up)
        GAPS.append(loop.time() - died_at)
        assert w.telnyx.calls[ccid].stream.url.startswith(f"ws://127.0.0.1:{taker.port}/")
        # Both survivors kept sweeping; exactly one claimed the call.
        for other in survivors:
            await other.cp.recovery.sweep()
        assert _streaming_starts(w, ccid) == 1
        print(f"instance death -> agent heard again: {GAPS[-1]:.2f} s (lease {FAST['lease_s']} s)")


async def test_redis_leases_claim_once_renew_and_release_only_their_own(redis_prefix):
    import asyncio

    import redis.asyncio as redis

    from control_plane.streamleases import RedisStreamLeases

    from .conftest import REDIS_URL

    client = redis.from_url(REDIS_URL)
    try:
        a = RedisStreamLeases(client, redis_prefix + uuid.uuid4().hex[:6] + ":")
        b = RedisStreamLeases(client, a._prefix)  # another instance, same deployment
        call = uuid.uuid4()
        assert await a.held([call]) == set()
        assert await a.claim(call, "a:recovering", 0.05) == 1
        assert await b.claim(call, "b:recovering", 5) is None  # exactly one claims
        await asyncio.sleep(0.1)  # a real Redis expiry (no virtual clock there)
        assert await b.claim(call, "b:recovering", 5) == 2  # the first re-attach brought no stream
        await a.hold(call, "a:stream", 0.3)  # the stream arrived: attempts forgotten
        await b.renew({call: "b:recovering"}, 5)  # not its lease any more: no effect
        await b.release(call, "b:recovering", 0.001)
        await a.renew({call: "a:stream"}, 5)
        assert await a.held([call]) == {call}
        await a.release(call, "a:stream", 0.05)
        await asyncio.sleep(0.1)  # a real Redis expiry (no virtual clock there)
        assert await a.held([call]) == set()
        assert await a.claim(call, "a:recovering", 5) == 1
    finally:
        await client.aclose()


async def test_a_session_saved_a_turn_behind_the_store_resumes_after_the_stored_turns(h):
    """A turn is recorded, then the session saved: an instance killed in between leaves the session
    a turn behind. Resuming from it re-used the last turn's index, and its upsert overwrote the
    turn recorded just before the kill (a lost record, seen running two instances)."""
    org, headers = await h.org()
    call = await _answered_call(h, headers)
    ccid = call["call_control_id"]
    for index, (said, replied) in enumerate([("hi", "Hello!"), ("my order", "Let me look.")]):
        await h.cp.recorder.record_turn(ccid, index, caller_text=said, agent_text=replied)
    # The session as saved after the first turn only (the kill came before the second save).
    await h.cp.sessions.save(CallSession(
        call_control_id=ccid, call_id=uuid.UUID(call["call_id"]), org_id=org.id,
        history=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}],
        agent_state={"turns": 1}))
    context = await h.cp.recorder.lookup(ccid)
    history, turns = await resumed_history(h.cp, context)
    assert turns == 2  # the next turn is stored at index 2, not over "my order"
    assert [m["content"] for m in history] == ["hi", "Hello!", "my order", "Let me look."]
    # A session that is up to date is still the one used (it can hold tool turns the store has not).
    fresh = [*history, {"role": "tool", "content": "{}", "tool_call_id": "t1"}]
    await h.cp.sessions.save(CallSession(call_control_id=ccid, call_id=uuid.UUID(call["call_id"]),
                                         org_id=org.id, history=fresh,
                                         agent_state={"turns": 2}))
    assert await resumed_history(h.cp, context) == (fresh, 2)


async def test_a_reattached_stream_counts_max_duration_from_the_calls_answer(h):
    """A call re-attached 25 minutes in (the instance carrying it died) got a fresh agent whose
    ``max_duration_s`` timer started again: 30 more minutes instead of the 5 left (and an inbound
    call has no Telnyx ``time_limit_secs`` behind it). The setup now says how long the call has run."""
    from datetime import timedelta

    from control_plane.pipeline import CallPorts
    from control_plane.store import utcnow
    from control_plane.streamauth import StreamCredential
    from engine.protocol import Start

    _, headers = await h.org()
    answered = utcnow() - timedelta(minutes=25)
    call = await (await h.start_call(headers)).json()
    await h.webhook("call.answered", {"call_control_id": call["call_control_id"]},
                    occurred_at=answered.isoformat().replace("+00:00", "Z"))
    await h.settle()
    assert (await _row(h, call)).answered_at == answered
    ccid = call["call_control_id"]
    ports = CallPorts(h.cp, StreamCredential("call", uuid.UUID(call["call_id"]), resume=True))
    setup = await ports.setup(Start(stream_id="s-" + ccid, call_control_id=ccid, encoding="PCMU", sample_rate=8000))
    assert 25 * 60 <= setup.elapsed_s < 25 * 60 + 60

    # Not answered yet (the first stream can come before call.answered is processed): nothing elapsed.
    fresh = await (await h.start_call(headers, to="+14155550124")).json()
    ports = CallPorts(h.cp, StreamCredential("call", uuid.UUID(fresh["call_id"])))
    setup = await ports.setup(Start(stream_id="s2", call_control_id=fresh["call_control_id"], encoding="PCMU",
                                    sample_rate=8000))
    assert setup.elapsed_s == 0.0



@pytest.mark.parametrize(("error", "over"), [
    (telnyx_error(404, "10005", "Resource not found"), False),  # the URL, not the call: our misconfiguration
    (telnyx_error(404, "", "Not Found"), False),  # a proxy's 404 page: no Telnyx error code at all
    (telnyx_error(422, "10015", "Bad Request"), False),  # the request's fault, not the call's state
    (telnyx_error(422, "90018", "Call has already ended"), True),
    (telnyx_error(404, "90015", "Invalid Call Control ID"), True),  # Telnyx forgot it: over for 10 min+
    (telnyx_error(422, "90015", "Invalid Call Control ID"), True),
])
async def test_only_an_answer_about_the_call_ends_it_not_any_404(h, error, over):
    """A 404 on ``GET /calls/{id}`` ended the call's row (recovery sweep and the dialer's stale
    check alike), whatever it meant: a wrong API base, answered 404 for every call, silently
    closed every live call. Only Telnyx's "already ended" and "invalid call control id" codes do."""
    from types import SimpleNamespace

    from control_plane.campaigns.dialer import Dialer
    from control_plane.campaigns.stale import check_stale

    _, headers = await h.org()
    lost = await _answered_call(h, headers)  # its stream is gone: the recovery sweep asks Telnyx
    stale = await _answered_call(h, headers, to="+14155550124")  # silent: the dialer's stale check asks
    for call in (lost, stale):
        h.telnyx.calls[call["call_control_id"]] = error
    await h.cp.recovery.opened(uuid.UUID(stale["call_id"]))  # this one has its stream

    repo = await h.cp.repository()

    class Store:  # the dialer's store, naming the stale call as its query would
        def __init__(self) -> None:
            self.repo = repo

        async def stale_calls(self, campaign_id: Any, before: Any) -> list[uuid.UUID]:
            return [uuid.UUID(stale["call_id"])]

    dialer = Dialer(h.cp, worker_id="t")
    dialer._store = Store()  # type: ignore[assignment]
    campaign = SimpleNamespace(id=uuid.uuid4())
    await h.cp.recovery.sweep()
    await check_stale(dialer, campaign)  # type: ignore[arg-type]
    for call in (lost, stale):
        row = await _row(h, call)
        assert row.terminal is over, (call, row.status)
        assert _for(h, "get_call", call)  # Telnyx was asked about each
    if not over:
        assert not _for(h, "streaming_start", lost)  # nor re-attached on an answer that says nothing
