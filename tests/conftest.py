"""Test-wide settings: hypothesis without wall-clock deadlines (CI machines are shared and noisy), the
event loops async tests run on, and the rule that nothing skips.

Async tests are plain ``async def test_...`` functions run by pytest-asyncio (``asyncio_mode = "auto"``
in pyproject.toml), each on a fresh loop. The loop is the stdlib's unless a test asks for more with
``@pytest.mark.asyncio(loop_factories=["uvloop", "asyncio"])`` (the engine's production loop is uvloop;
tests of code that touches the loop's internals, such as child processes, run on both), or
``loop_factories=["virtual"]`` for virtual time (bench/virtual_time.py): timing asserted
exactly, without a wall-clock window.
"""

import asyncio
import os
from collections.abc import Callable, Mapping

import pytest
import uvloop
from hypothesis import HealthCheck, settings

from bench.virtual_time import VirtualTimeLoop

pytest_plugins = ["tests.fixtures.servers"]

settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci")


# -- the loops async tests run on -------------------------------------------------------------

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
    "virtual": VirtualTimeLoop,  # timers fire at once, in order, at their exact virtual times
}


def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every loop for a test that names its loops (the marker picks among them), the stdlib's otherwise:
    returning both for every test would run the whole suite twice."""
    marker = item.get_closest_marker("asyncio")
    if marker is not None and "loop_factories" in marker.kwargs:
        return LOOP_FACTORIES
    return {"asyncio": asyncio.new_event_loop}


# -- nothing skips where the services and extras are required (CI, `make test`) ----------------

_skipped: list[str] = []


def pytest_runtest_logreport(report):  # type: ignore[no-untyped-def]
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    """With CALLAGENT_NO_SKIPS=1 (set by `make test`) a skipped test fails the run: `make test` installs every
    extra and system package the suite uses, so a skip means a missing install step."""
    if _skipped and os.environ.get("CALLAGENT_NO_SKIPS") == "1" and exitstatus == 0:
        session.exitstatus = 1
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"FAILED: {len(_skipped)} test(s) skipped although every dependency is required:",
                                red=True)
            for nodeid in _skipped[:20]:
                reporter.write_line(f"  {nodeid}")
