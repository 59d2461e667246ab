"""The OpenAPI document matches the app and the models; a hypothesis fuzz run finds no 5xx."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from control_plane.api.openapi import build_openapi
from control_plane.api.routes import ENDPOINTS
from control_plane.api.schemas import CallDetail, CallList, StartCallResponse
from control_plane.telnyx.webhooks import sign

from .conftest import make_settings
from .fakes import WEBHOOK_PRIVATE_KEY, harness


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_openapi_document_covers_every_route_and_resolves(tmp_path):
    async with harness(make_settings(tmp_path)) as h:
        response = await h.client.get("/openapi.json")
        document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert document == json.loads(json.dumps(build_openapi(server_url="https://agent.example.com")))
    routes = {(r.method, r.resource.canonical) for r in h.client.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/")}
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert routes == documented and len(routes) == len(ENDPOINTS)
    schemas = document["components"]["schemas"]
    for ref in _refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    start = document["paths"]["/api/calls/start"]["post"]
    body = schemas[start["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(body["required"]) == {"to", "from"} and body["additionalProperties"] is False
    assert {"201", "400", "409", "429"} <= set(start["responses"])
    assert "Retry-After" in start["responses"]["429"]["headers"]
    error = schemas["ErrorBody"]
    assert error["required"] == ["error"]
    list_params = {p["name"] for p in document["paths"]["/api/calls"]["get"]["parameters"]}
    assert list_params == {"status", "campaign_id", "since", "until", "limit", "cursor"}
    assert document["paths"]["/api/calls/{call_id}"]["get"]["security"] == [{"bearerAuth": []}]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_responses_match_their_documented_models(h):
    _, headers = await h.org()
    started = StartCallResponse.model_validate(await (await h.start_call(headers)).json())
    await h.cp.recorder.record_turn(started.call_control_id, 0, caller_text="hi", agent_text="hello",
                                    latency={"turn_latency_ms": 312.5})
    detail = CallDetail.model_validate(await (await h.client.get(f"/api/calls/{started.call_id}",
                                                                headers=headers)).json())
    assert detail.turns[0].latency["turn_latency_ms"] == 312.5
    listed = CallList.model_validate(await (await h.client.get("/api/calls", headers=headers)).json())
    assert listed.data[0].id == started.call_id


# -- fuzzing ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
phones = st.sampled_from(["+14155550123", "+442071838750", "+1 (415) 555-0100", "14155550123", "", "+", "+0123"])
plausible_text = phones | st.text(max_size=30) | st.sampled_from(["en-US", "Telnyx.NaturalHD.astra", "x"])
agent_configs = st.fixed_dictionaries(
    {}, optional={"personality": plausible_text, "voice": plausible_text, "language": plausible_text,
                  "first_message": json_values, "tools": json_values, "max_duration_s": json_values,
                  "record": json_values, "extra": json_values})
start_bodies = st.fixed_dictionaries(
    {}, optional={"to": phones | json_values, "from": phones | json_values, "agent_config": agent_configs | json_values,
                  "campaign_id": st.uuids().map(str) | json_values, "ring_timeout_s": json_values,
                  "answering_machine_detection": st.sampled_from(["detect", "premium", "nope"]) | json_values,
                  "unexpected": json_values})
valid_phones = st.sampled_from(["+14155550123", "+442071838750", "+1 (415) 555-0100", "+4915112345678"])
valid_starts = st.fixed_dictionaries(
    {"to": valid_phones, "from": valid_phones,
     "agent_config": st.fixed_dictionaries(
         {"personality": st.sampled_from(["friendly", "professional", "sales"]) | st.text(max_size=8),
          "voice": st.just("Telnyx.NaturalHD.astra"),
          "language": st.sampled_from(["en", "en-US", "de-DE"])},
         optional={"first_message": st.text(max_size=20), "max_duration_s": st.integers(0, 20_000),
                   "record": st.booleans(), "tools": st.lists(st.sampled_from(["end_call", "transfer_call",
                                                                               "send_dtmf", "fly"]), max_size=3),
                   "variables": st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=2),
                   "system_prompt": st.text(max_size=30)})},
    optional={"ring_timeout_s": st.integers(0, 700), "answering_machine_detection": st.sampled_from(
        ["detect", "premium", "disabled"])})

# Ids seen so far (filled while fuzzing), so later requests and webhooks hit real calls.
CALLS: list[tuple[str, str]] = []


def _known(index: int, part: int) -> str:
    return CALLS[index % len(CALLS)][part] if CALLS else str(uuid.uuid4())


known_call_ids = st.integers(0, 10_000).map(lambda i: _known(i, 0))
known_control_ids = st.integers(0, 10_000).map(lambda i: _known(i, 1))
path_values = known_call_ids | st.uuids().map(str) | phones | st.text(max_size=20)
content_types = st.sampled_from(["application/json", "text/csv", "text/plain", "application/octet-stream",
                                 "application/merge-patch+json", ""])
bodies = (json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=64)
          | start_bodies.map(lambda v: json.dumps(v).encode()) | st.text(max_size=80).map(str.encode))
query_values = st.dictionaries(st.sampled_from(["status", "campaign_id", "since", "until", "limit", "cursor", "x"]),
                               st.text(max_size=30) | st.sampled_from(["completed", "2026-01-01T00:00:00Z", "0",
                                                                       "10", "9999-12-31T23:59:59-05:00"]),
                               max_size=4)
webhook_payloads = st.fixed_dictionaries(
    {}, optional={"call_control_id": known_control_ids | st.sampled_from(["v3:fuzz"]) | json_values,
                  "client_state": json_values | st.text(max_size=40), "direction": st.sampled_from(["incoming", "x"]),
                  "to": phones | json_values, "from": phones | json_values, "hangup_cause": json_values
                  | st.sampled_from(["normal_clearing", "user_busy", "timeout"]),
                  "call_quality_stats": json_values, "recording_urls": json_values, "result": json_values,
                  "total_cost": st.sampled_from(["1e999999", "NaN", "-1", "0.01"]) | json_values,
                  "cost_parts": json_values})
event_types = st.sampled_from(["call.initiated", "call.answered", "call.hangup", "streaming.failed",
                               "streaming.started", "call.recording.saved", "call.cost",
                               "call.machine.greeting.ended", "call.machine.detection.ended"])
valid_envelopes = st.fixed_dictionaries({"data": st.fixed_dictionaries({
    "event_type": event_types, "id": st.uuids().map(str), "occurred_at": st.just("2026-01-01T00:00:00Z"),
    "payload": webhook_payloads})})
webhook_envelopes = st.fixed_dictionaries({
    "data": st.fixed_dictionaries(
        {"event_type": event_types | st.text(max_size=12),
         "id": st.uuids().map(str) | st.text(min_size=1, max_size=12),
         "occurred_at": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "0001-01-01T00:00:00+05:00",
                                         "9999-12-31T23:59:59-05:00", "yesterday"]),
         "payload": webhook_payloads | json_values}),
}) | json_values

requests = st.one_of(
    st.tuples(st.just("POST"), st.just("/api/calls/start"), bodies, content_types),
    st.tuples(st.just("POST"), st.just("/api/calls/start"), start_bodies.map(lambda v: json.dumps(v).encode()),
              st.just("application/json")),
    st.tuples(st.just("POST"), st.just("/api/calls/start"), valid_starts.map(lambda v: json.dumps(v).encode()),
              st.just("application/json")),
    st.tuples(st.sampled_from(["GET", "POST", "DELETE"]),
              st.sampled_from(["/api/calls/{}", "/api/calls/{}/hangup", "/api/dnc/{}", "/api/contacts/{}",
                               "/api/keys/{}"]),
              path_values, st.just("")),
    st.tuples(st.just("GET"), st.sampled_from(["/api/calls/{}", "/api/calls/{}/hangup"]), known_call_ids,
              st.just("")),
    st.tuples(st.just("POST"), st.sampled_from(["/api/dnc", "/api/keys", "/api/dnc/import"]), bodies, content_types),
    st.tuples(st.just("GET"), st.just("/api/calls"), query_values, st.just("")),
    st.tuples(st.just("WEBHOOK"), st.just("/webhook/telnyx"), webhook_envelopes, st.booleans()),
    st.tuples(st.just("WEBHOOK"), st.just("/webhook/telnyx"), valid_envelopes, st.just(True)),
)


async def _send(h: Any, headers: dict[str, str], request: tuple[Any, ...]) -> Any:
    method, path, payload, extra = request
    if method == "WEBHOOK":
        raw = json.dumps(payload).encode()
        request_headers = sign(raw, WEBHOOK_PRIVATE_KEY, int(time.time())) if extra else {}
        return await h.client.post(path, data=raw, headers={**request_headers, "Content-Type": "application/json"})
    if "{}" in path:
        return await h.client.request(method, path.format(quote(payload, safe="")), headers=headers)
    if isinstance(payload, dict):
        return await h.client.get(f"{path}?{urlencode(payload)}", headers=headers)
    request_headers = dict(headers)
    if extra:
        request_headers["Content-Type"] = extra
    return await h.client.request(method, path, data=payload, headers=request_headers)


@pytest.mark.slow
async def test_fuzzing_the_api_finds_no_5xx(tmp_path):
    # Hypothesis runs its examples (and shrinks a failure) in a thread of its own; each request is
    # sent on the test's loop, where the app is.
    loop = asyncio.get_running_loop()
    async with harness(make_settings(tmp_path, api={"call_starts_per_minute": 100_000})) as h:
        org, headers = await h.org()
        repo = await h.cp.repository()
        await repo.add_phone_number(org.id, "+14155550123", {"personality": "p"})
        seen: dict[int, int] = {}

        @hypothesis_settings(max_examples=400, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(request=requests)
        def check(request: tuple[Any, ...]) -> None:
            async def go() -> tuple[int, Any]:
                response = await _send(h, headers, request)
                text = await response.text()
                if request[1] == "/api/calls/start" and response.status == 201:
                    body = json.loads(text)
                    CALLS.append((body["call_id"], body["call_control_id"]))
                if sum(seen.values()) % 20 == 19:
                    await h.settle()  # process webhooks as we go, so events meet calls in many states
                return response.status, text

            status, text = asyncio.run_coroutine_threadsafe(go(), loop).result()
            seen[status] = seen.get(status, 0) + 1
            assert status < 500, (request, status, text[:500])
            if status >= 400:
                error = json.loads(text)["error"]
                assert isinstance(error["code"], str) and isinstance(error["message"], str)

        await asyncio.to_thread(check)
        # Whatever was accepted must also process cleanly: no event left failing.
        await h.settle()
        async with repo.connection() as conn:
            # (An inbound call to a number nobody registered is rejected on purpose; the event keeps why.)
            failures = await conn.fetch("SELECT event_type, last_error FROM call_events WHERE last_error IS NOT NULL "
                                        "AND last_error NOT LIKE 'rejected: %'")
        assert failures == []
        assert seen.get(200, 0) > 20 and seen.get(201, 0) > 10 and seen.get(400, 0) > 20, seen
