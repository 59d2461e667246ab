"""Time to first byte of the dashboard's call list with 10,000 calls in SQLite (a measurement,
not a test): ``python -m tests.dashboard.measure_ttfb``. Writes the calls (about 12 s), then
times the first page, two filtered lists and page 101 of the keyset pagination."""

from __future__ import annotations

import asyncio
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.control_plane.conftest import make_settings
from tests.control_plane.fakes import harness
from tests.dashboard.helpers import secret_of, sign_in, write_call

CALLS = 10_000
SAMPLES = 20
_NEXT = re.compile(r'href="(/dashboard/calls\?[^"]*cursor=[^"]*)" rel="next"')


async def _ttfb(client: Any, url: str) -> str:
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        response = await client.get(url)  # returns once the status line and headers are in
        samples.append((time.perf_counter() - started) * 1000)
        await response.read()
    samples.sort()
    return f"median {statistics.median(samples):.1f} ms, p95 {samples[int(SAMPLES * 0.95) - 1]:.1f} ms"


async def main() -> None:
    async with harness(make_settings(Path(tempfile.mkdtemp()))) as h:
        org, headers = await h.org()
        repo = await h.cp.repository()
        base = datetime(2026, 1, 1, tzinfo=UTC)
        statuses = ("completed", "completed", "completed", "failed", "no_answer", "busy")
        for i in range(CALLS):
            await write_call(repo, org.id, status=statuses[i % 6], direction="outbound" if i % 4 else "inbound",
                             created_at=base + timedelta(minutes=i), to=f"+1415555{i:04d}")
        await sign_in(h.client, secret_of(headers))
        for label, url in (("first page", "/dashboard/calls"),
                           ("status=failed", "/dashboard/calls?status=failed"),
                           ("inbound, one day", "/dashboard/calls?direction=inbound&from=2026-01-03&to=2026-01-03")):
            print(f"{label}: {await _ttfb(h.client, url)}")
        url = "/dashboard/calls"
        for _ in range(100):
            match = _NEXT.search(await (await h.client.get(url)).text())
            assert match
            url = match.group(1).replace("&amp;", "&")
        print(f"page 101: {await _ttfb(h.client, url)}")


if __name__ == "__main__":
    asyncio.run(main())
