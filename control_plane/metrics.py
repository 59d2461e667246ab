"""The control plane's Prometheus families, next to the engine's on one registry.

Everything here is counted where the work already happens once per request, webhook, dial or
call step (never per media frame); gauges that describe state (DB pool, campaigns running) are
read at scrape time. Names follow Prometheus conventions: ``callagent_`` prefix, base units
(seconds), ``_total`` on counters (added by the client library).

No ``_created`` series: they double the counter/histogram series for a timestamp nothing here
needs (``rate()`` copes with restarts), so the process turns them off.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

# Request and lag buckets: sub-millisecond REST answers up to slow webhooks behind a stalled DB.
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_LOOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)

UNMATCHED_ROUTE = "unmatched"
"""The route label of requests no route matched: raw paths would be unbounded label values."""

DIAL_SOURCES = ("api", "campaign")
DIAL_ERRORS = ("rate_limited", "refused", "server_error", "unreachable")
CALL_STEPS = ("started", "answered", "ended")

def version() -> str:
    try:
        return metadata.version("callagent")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


class _BuildInfo(Collector):
    def collect(self) -> Iterator[InfoMetricFamily]:
        family = InfoMetricFamily("callagent_build", "The running callagent build")
        family.add_metric([], {"version": version(), "python": platform.python_version()})
        yield family


class _PoolCollector(Collector):
    """The PostgreSQL pool of this process, read at scrape time (nothing when there is none)."""

    def __init__(self, pool_of: Callable[[], Any]) -> None:
        self._pool_of = pool_of

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._pool_of()
        if pool is None:
            return
        size, idle = pool.get_size(), pool.get_idle_size()
        connections = GaugeMetricFamily("callagent_db_pool_connections", "PostgreSQL pool connections by state",
                                        labels=["state"])
        connections.add_metric(["idle"], idle)
        connections.add_metric(["in_use"], size - idle)
        yield connections
        limit = GaugeMetricFamily("callagent_db_pool_max_connections", "Most connections the pool may open")
        limit.add_metric([], pool.get_max_size())
        yield limit


class ControlPlaneMetrics:
    """The families above, registered on ``registry`` (the app's, shared with the engine)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # The default registry has these; a private one must add them itself.
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        r.register(_BuildInfo())
        self.http_requests = Counter(
            "callagent_http_requests", "HTTP requests answered, by route template and status",
            ["method", "route", "status"], registry=r)
        self.http_duration = Histogram(
            "callagent_http_request_duration_seconds", "Time to answer an HTTP request, by route template and status",
            ["method", "route", "status"], buckets=_HTTP_BUCKETS, registry=r)
        self.webhook_ingest_lag = Histogram(
            "callagent_webhook_ingest_lag_seconds",
            "Telnyx's occurred_at to the webhook being stored here (delivery delay plus clock skew)",
            buckets=_LAG_BUCKETS, registry=r)
        self.webhook_processing_lag = Histogram(
            "callagent_webhook_processing_lag_seconds", "A stored webhook's wait until its event was processed",
            buckets=_LAG_BUCKETS, registry=r)
        self.webhooks = Counter("callagent_webhooks_received", "Verified Telnyx webhooks, by whether new",
                                ["duplicate"], registry=r)
        dials = Counter("callagent_dials", "Dial commands sent to Telnyx", ["source"], registry=r)
        dial_errors = Counter("callagent_dial_errors", "Dial commands that failed, by source and reason",
                              ["source", "reason"], registry=r)
        # Children bound up front: every series exists from the first scrape (rate() needs a zero).
        self._dials = {source: dials.labels(source) for source in DIAL_SOURCES}
        self._dial_errors = {(s, e): dial_errors.labels(s, e) for s in DIAL_SOURCES for e in DIAL_ERRORS}
        calls = Counter("callagent_calls", "Calls reaching a lifecycle step", ["step"], registry=r)
        self._calls = {step: calls.labels(step) for step in CALL_STEPS}
        self.campaigns_completed = Counter("callagent_campaigns_completed", "Campaigns this process completed",
                                           registry=r)
        self.campaigns_running = Gauge("callagent_campaigns_running", "Campaigns this process is dialling",
                                       registry=r)
        self.event_loop_lag = Histogram(
            "callagent_event_loop_lag_seconds", "How late the event loop ran a timer (blocked loop: late audio)",
            buckets=_LOOP_BUCKETS, registry=r)
        self._pool_of: Callable[[], Any] = lambda: None
        r.register(_PoolCollector(lambda: self._pool_of()))

    def watch_pool(self, pool_of: Callable[[], Any]) -> None:
        """``pool_of()`` returns the asyncpg pool, or None while there is none."""
        self._pool_of = pool_of

    def watch_campaigns(self, running: Callable[[], int]) -> None:
        self.campaigns_running.set_function(running)

    def dial_sent(self, source: str) -> None:
        self._dials[source].inc()

    def dial_failed(self, source: str, reason: str) -> None:
        self._dial_errors[(source, reason)].inc()

    def call_step(self, step: str) -> None:
        self._calls[step].inc()


def exposition(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The registry as a scrape body and its content type: OpenMetrics to a scraper that asks
    for it (Prometheus does), the classic text format otherwise."""
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


LOOP_LAG_INTERVAL_S = 0.5


async def watch_event_loop(histogram: Histogram, interval_s: float = LOOP_LAG_INTERVAL_S) -> None:
    """Sleep ``interval_s`` again and again and observe how much later than asked each wake-up
    came: the time some callback held the loop (and with it every call's 20 ms playout)."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        histogram.observe(max(0.0, loop.time() - asked))


@contextlib.asynccontextmanager
async def event_loop_watch(histogram: Histogram) -> Any:
    task = asyncio.ensure_future(watch_event_loop(histogram))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
