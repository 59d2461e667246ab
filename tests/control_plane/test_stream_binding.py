"""Media streams are bound to their calls (issue 14, item 2).

Before: with no stream token configured, a WebSocket ``start`` whose ``client_state`` named a
known call id got that call's agent (prompt, variables, tools, provider budget), even after the
call had ended. These tests fail on that code: the hijack and the ended-call stream were served.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import aiohttp
import orjson
import pytest

from bench.telnyx_emulator import SilentCallee
from control_plane.callstate import client_state_for
from control_plane.streamauth import ANONYMOUS, OPERATOR, StreamCredential, issue_token, verify_token, with_token
from engine.conversation.ports import StreamRefused

from .conftest import make_settings
from .fakes import harness
from .live import eventually, world


def _start(call_control_id: str, client_state: str | None) -> str:
    return orjson.dumps({
        "event": "start", "sequence_number": "1", "stream_id": str(uuid.uuid4()),
        "start": {"call_control_id": call_control_id, "client_state": client_state,
                  "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}},
    }).decode()


async def _frames_until_closed(url: str, start: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Connect, send ``connected`` and ``start``, and read every frame until the server closes."""
    got = []
    # asyncio.timeout is a guard: a served stream never closes
    async with asyncio.timeout(15), aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers or {}) as ws:
        await ws.send_str('{"event":"connected","version":"1.0.0"}')
        await ws.send_str(start)
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                got.append(orjson.loads(message.data))
    return got


def _callees() -> tuple[dict[str, list[SilentCallee]], Any]:
    made: dict[str, list[SilentCallee]] = {}

    def factory(call: Any) -> SilentCallee:
        callee = SilentCallee()
        made.setdefault(call.call_control_id, []).append(callee)
        return callee

    return made, factory


async def test_the_hijack_gets_nothing_and_the_dialled_stream_gets_its_agent(tmp_path):
    callees, factory = _callees()
    async with world(lambda **kw: make_settings(tmp_path, **kw), callee_factory=factory) as w:
        (server,) = w.servers
        victim = await w.start_call(server)
        ccid = victim["call_control_id"]

        # The real dialled stream: its agent greets the callee.
        async def greeted() -> bool:
            return any(c.queue is not None and c.queue.chunks > 0 for c in callees.get(ccid, []))

        await eventually(greeted)

        media_url = f"ws://127.0.0.1:{server.port}/media-stream"
        state = base64.b64encode(client_state_for(uuid.UUID(victim["call_id"])).encode()).decode()
        # The issue's hijack: no token, client_state naming the call. Refused at the upgrade.
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(media_url)
            assert refused.value.status == 401
            # A made-up credential is no better.
            forged = f"{victim['call_id']}.nonce.{'A' * 43}"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(with_token(media_url, forged))
            assert refused.value.status == 401

        # A genuine credential for the attacker's own call, naming the victim's call_control_id
        # and client_state: the socket is closed without a single agent frame.
        own = await w.start_call(server, to="+14155550124")
        token = issue_token(server.cp.keys.hasher, uuid.UUID(own["call_id"]))
        frames = await _frames_until_closed(with_token(media_url, token), _start(ccid, state))
        assert frames == []


async def test_a_stream_for_an_ended_call_is_refused(tmp_path):
    async with world(lambda **kw: make_settings(tmp_path, **kw)) as w:
        call = await w.start_call(w.servers[0])
        ccid = call["call_control_id"]
        stream_url = w.telnyx.calls[ccid].params["stream_url"]  # the URL Telnyx was given, credential inside
        w.telnyx.calls[ccid].hang_up()
        repo = await w.servers[0].cp.repository()

        async def ended() -> bool:
            return (await repo.get_call_unscoped(uuid.UUID(call["call_id"]))).terminal

        await eventually(ended)
        frames = await _frames_until_closed(stream_url, _start(ccid, None))
        assert frames == []


async def test_bind_checks_the_call_behind_each_kind_of_credential(tmp_path):
    async with harness(make_settings(tmp_path, telnyx_api_key="KEY-remote")) as h:
        _, headers = await h.org()
        started = await (await h.start_call(headers)).json()
        call_id, ccid = uuid.UUID(started["call_id"]), started["call_control_id"]
        state = base64.b64encode(client_state_for(call_id).encode()).decode()
        recorder = h.cp.recorder
        assert (await recorder.bind(StreamCredential("call", call_id), ccid)).call_id == call_id
        with pytest.raises(StreamRefused):
            await recorder.bind(StreamCredential("call", call_id), "v3:someone-else")
        with pytest.raises(StreamRefused):
            await recorder.bind(StreamCredential("call", uuid.uuid4()), ccid)
        # Behind the operator's own token, client_state is Telnyx's echo and may find the call;
        # the call_control_id must still be the call's.
        assert (await recorder.bind(OPERATOR, ccid)).call_id == call_id
        with pytest.raises(StreamRefused):
            await recorder.bind(OPERATOR, "v3:not-its-own", state)
        with pytest.raises(StreamRefused):  # not ours, and unknown streams are not accepted
            await recorder.bind(OPERATOR, "v3:unknown")
        # Anonymous streams never get a stored call, whatever they claim: in remote mode they are
        # refused, and where unknown streams are accepted they get the default agent.
        with pytest.raises(StreamRefused):
            await recorder.bind(ANONYMOUS, ccid, state)
        h.cp.settings.streams.accept_unknown = True
        try:
            assert await recorder.bind(ANONYMOUS, ccid, state) is None
        finally:
            h.cp.settings.streams.accept_unknown = False


def test_a_credential_names_one_call_and_survives_no_edit():
    from control_plane.crypto import LookupHasher

    hasher = LookupHasher(b"k" * 32)
    call_id = uuid.uuid4()
    token = issue_token(hasher, call_id)
    assert verify_token(hasher, token) == call_id
    assert issue_token(hasher, call_id) != token  # fresh for every stream
    other = uuid.uuid4()
    raw_id, nonce, mac = token.split(".")
    for bad in (f"{other}.{nonce}.{mac}", f"{raw_id}.{nonce}x.{mac}", f"{raw_id}.{nonce}.{mac[:-1]}",
                f"{raw_id}.{mac}", "", "x" * 500, token.upper()):
        assert verify_token(hasher, bad) is None
    assert verify_token(LookupHasher(b"j" * 32), token) is None


async def test_local_mode_accepts_unknown_streams_and_says_so_at_start_up(tmp_path, caplog):
    from control_plane.services import ControlPlane

    local = ControlPlane(make_settings(tmp_path))  # no Telnyx account: the emulators' local mode
    remote = ControlPlane(make_settings(tmp_path, telnyx_api_key="KEY-remote"))
    with caplog.at_level("WARNING", logger="control_plane.services"):
        for cp in (local, remote):
            await cp.start()
            await cp.close()
    said = [r.getMessage() for r in caplog.records if "carry no call credential" in r.getMessage()]
    assert said == ["media streams that carry no call credential are accepted and run the default agent "
                    "(local mode)"]
