"""The control plane's metrics, call lifecycle log lines, JSON logs and the access-log switch."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from control_plane.app import METRICS_KEY, app_runner, create_app
from control_plane.logfmt import JsonFormatter, configure
from control_plane.metrics import ControlPlaneMetrics, watch_event_loop
from control_plane.settings import Settings
from control_plane.telnyx.client import TelnyxError, TelnyxRateLimited
from tests.fixtures.waiting import eventually

from .conftest import make_settings
from .fakes import harness, telnyx_error

NEW_FAMILIES = {
    "callagent_http_requests", "callagent_http_request_duration_seconds", "callagent_webhook_ingest_lag_seconds",
    "callagent_webhook_processing_lag_seconds", "callagent_dials", "callagent_dial_errors",
    "callagent_provider_errors", "callagent_provider_ttfb_seconds", "callagent_campaigns_running",
    "callagent_campaigns_completed", "callagent_event_loop_lag_seconds", "callagent_calls", "callagent_build_info",
    "process_cpu_seconds", "process_resident_memory_bytes", "python_gc_collections",
}


def _value(h, name: str, **labels: str) -> float:
    return h.client.app[METRICS_KEY].registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def settings(tmp_path) -> Settings:
    """The embedded store (the metrics do not depend on the backend; the pool gauges have their own test)."""
    return make_settings(tmp_path)


async def test_metrics_lists_the_new_families_without_created_series(h):
    text = await (await h.client.get("/metrics")).text()
    families = {f.name for f in text_string_to_metric_families(text)}
    assert families >= NEW_FAMILIES, NEW_FAMILIES - families
    assert "_created" not in text
    assert 'callagent_build_info{python="' in text and 'version="' in text
    # Every dial series is there from the first scrape (rate() needs a zero to start from).
    assert 'callagent_dial_errors_total{reason="unreachable",source="campaign"} 0.0' in text


async def test_metrics_negotiates_openmetrics(h):
    classic = await h.client.get("/metrics")
    assert classic.headers["Content-Type"].startswith("text/plain")
    om = await h.client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    body = await om.text()
    assert body.rstrip().endswith("# EOF") and "# TYPE callagent_build info" in body


async def test_http_requests_are_counted_by_route_template_not_raw_path(h):
    _, headers = await h.org()
    for call_id in ("6f1c1c8e-1111-4111-8111-111111111111", "6f1c1c8e-2222-4222-8222-222222222222"):
        assert (await h.client.get(f"/api/calls/{call_id}", headers=headers)).status == 404
    assert (await h.client.get("/no/such/path")).status == 404
    assert (await h.client.get("/api/calls", headers={"Authorization": "Bearer wrong"})).status == 401
    assert _value(h, "callagent_http_requests_total", method="GET", route="/api/calls/{call_id}",
                  status="404") == 2
    assert _value(h, "callagent_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert _value(h, "callagent_http_requests_total", method="GET", route="/api/calls", status="401") == 1
    assert _value(h, "callagent_http_request_duration_seconds_count", method="GET",
                  route="/api/calls/{call_id}", status="404") == 2
    text = await (await h.client.get("/metrics")).text()
    assert "6f1c1c8e" not in text


async def test_dials_errors_webhook_lag_and_call_lifecycle_lines(h, caplog):
    caplog.set_level(logging.INFO, logger="control_plane.calls.lifecycle")
    _, headers = await h.org()
    call = await (await h.start_call(headers)).json()
    ccid, call_id = call["call_control_id"], call["call_id"]
    assert _value(h, "callagent_dials_total", source="api") == 1
    assert _value(h, "callagent_calls_total", step="started") == 1

    occurred = (datetime.now(UTC) - timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await h.webhook("call.answered", {"call_control_id": ccid}, occurred_at=occurred)
    await h.webhook("call.hangup", {"call_control_id": ccid, "hangup_cause": "normal_clearing"},
                    event_id="hangup-1")
    await h.webhook("call.hangup", {"call_control_id": ccid, "hangup_cause": "normal_clearing"},
                    event_id="hangup-1")  # Telnyx redelivers: counted as a duplicate, no second lag
    await h.settle()
    assert _value(h, "callagent_webhooks_received_total", duplicate="false") == 2
    assert _value(h, "callagent_webhooks_received_total", duplicate="true") == 1
    assert _value(h, "callagent_webhook_ingest_lag_seconds_count") == 2
    assert _value(h, "callagent_webhook_ingest_lag_seconds_sum") >= 3
    assert _value(h, "callagent_webhook_processing_lag_seconds_count") == 2
    assert _value(h, "callagent_calls_total", step="answered") == 1
    assert _value(h, "callagent_calls_total", step="ended") == 1

    lines = [r.getMessage() for r in caplog.records if r.name == "control_plane.calls.lifecycle"]
    assert lines == [f"call {call_id} started: outbound via api", f"call {call_id} answered",
                     f"call {call_id} ended: completed (normal_clearing)"]
    assert all(str(r.__dict__["call_id"]) == call_id for r in caplog.records
               if r.name == "control_plane.calls.lifecycle")
    assert "+1415" not in caplog.text  # numbers are personal data: never in these lines

    for failure, reason in ((TelnyxRateLimited(429, [], 1.0, method="POST", path="/calls"), "rate_limited"),
                            (telnyx_error(422, "10016", "bad number"), "refused"),
                            (telnyx_error(503, "x", "down"), "server_error"),
                            (TelnyxError("timed out"), "unreachable")):
        h.telnyx.fail_dial = failure
        assert (await h.start_call(headers)).status >= 400
        assert _value(h, "callagent_dial_errors_total", source="api", reason=reason) == 1
    assert _value(h, "callagent_dials_total", source="api") == 5
    assert _value(h, "callagent_calls_total", step="started") == 1  # failed dials never started


async def test_db_pool_gauges_on_postgres(tmp_path, pg_schema):
    async with harness(make_settings(tmp_path, backend="postgres", pg_schema=pg_schema)) as h:
        await h.org()
        text = await (await h.client.get("/metrics")).text()
        samples = {(s.name, s.labels.get("state")): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name.startswith("callagent_db")}
        assert samples[("callagent_db_pool_max_connections", None)] == 4
        assert samples[("callagent_db_pool_connections", "idle")] + samples[
            ("callagent_db_pool_connections", "in_use")] >= 1


async def test_no_pool_gauges_on_the_embedded_store(h):
    await h.org()
    assert "callagent_db_pool" not in await (await h.client.get("/metrics")).text()


async def test_event_loop_lag_sees_a_blocked_loop():
    histogram = Histogram("lag", "lag", registry=CollectorRegistry(), buckets=(0.01, 0.1, 1.0))
    task = asyncio.ensure_future(watch_event_loop(histogram, interval_s=0.001))
    await asyncio.sleep(0)  # the watcher takes its first deadline
    time.sleep(0.05)  # a callback holding the loop
    await eventually(lambda: histogram.collect()[0].samples[-2].value, what="the late wake-up counted (_count)")
    task.cancel()
    samples = {s.name: s.value for s in histogram.collect()[0].samples if not s.labels}
    assert samples["lag_sum"] >= 0.04


def test_two_metrics_objects_each_have_their_own_registry():
    a, b = ControlPlaneMetrics(), ControlPlaneMetrics()
    a.dial_sent("api")
    assert a.registry.get_sample_value("callagent_dials_total", {"source": "api"}) == 1
    assert b.registry.get_sample_value("callagent_dials_total", {"source": "api"}) == 0


def test_json_log_lines_carry_the_call_id_and_traceback():
    formatter = JsonFormatter()
    record = logging.LogRecord("control_plane.x", logging.INFO, __file__, 1, "call %s answered", ("abc",), None)
    record.call_id = "abc"
    record.phone = "+14155550123"  # not a field the formatter takes
    line = json.loads(formatter.format(record))
    assert line["message"] == "call abc answered" and line["call_id"] == "abc" and line["level"] == "INFO"
    assert line["logger"] == "control_plane.x" and "phone" not in line
    datetime.fromisoformat(line["time"])
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failing = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = json.loads(formatter.format(failing))
    assert "ValueError: boom" in out["exception"] and "\n" not in formatter.format(failing)


def test_log_format_setting_picks_the_json_formatter(monkeypatch):
    root = logging.getLogger()
    level = root.level
    monkeypatch.setattr(root, "handlers", [])
    try:
        configure("WARNING", "json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter) and root.level == logging.WARNING
        monkeypatch.setattr(root, "handlers", [])
        configure("INFO", "text")
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.setLevel(level)  # later tests count log records: leave the level as it was
    monkeypatch.setenv("CALLAGENT_LOG_FORMAT", "yaml")
    from pydantic import ValidationError

    from control_plane.settings import Settings

    with pytest.raises(ValidationError):
        Settings(_env_file=None)


@pytest.mark.parametrize("enabled", [False, True])
async def test_access_log_only_when_turned_on(tmp_path, caplog, enabled):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    settings = make_settings(tmp_path, server={"access_log": enabled})
    runner = app_runner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200
    finally:
        await runner.cleanup()
    access = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert bool(access) is enabled
    if enabled:
        assert "/healthz" in access[0].getMessage()


async def test_the_campaign_worker_serves_its_metrics(tmp_path, pg_schema):
    from callagent.local import free_port
    from control_plane.campaigns.worker import run_worker

    settings = make_settings(tmp_path, backend="postgres", pg_schema=pg_schema)
    port = free_port("127.0.0.1")
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_worker(settings, stop=stop, metrics_port=port))
    try:
        async with aiohttp.ClientSession() as session:
            async def served() -> str | None:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        return await resp.text()
                except aiohttp.ClientConnectionError:
                    assert not task.done(), task.exception()
                    return None

            text = await eventually(served, what="the worker serving /metrics")
            async with session.get(f"http://127.0.0.1:{port}/metrics",
                                   headers={"Accept": "application/openmetrics-text"}) as resp:
                assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    finally:
        stop.set()
        await task
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"callagent_dials", "callagent_campaigns_running", "callagent_db_pool_connections",
            "callagent_build_info", "process_cpu_seconds"} <= families
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):  # closed with the worker
            await session.get(f"http://127.0.0.1:{port}/metrics")
