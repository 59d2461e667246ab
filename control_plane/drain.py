"""Graceful shutdown: stop taking work, let live calls finish, hand over the rest.

On SIGTERM ``callagent serve`` runs :func:`drain` before it closes the listener:

1. the control plane starts draining: ``/readyz`` turns false, ``POST /api/calls/start``
   answers 503 with Retry-After, the campaign dialer claims nothing more;
2. live calls (open media sockets, including streams that arrive meanwhile) run on for up
   to ``server.drain_grace_s``, a second signal cutting it short; webhooks keep being
   accepted and processed throughout, and until the process exits;
3. the calls still up are handed over by ``hand_over``: by default their media sockets are
   closed with 1012 (service restart). The calls themselves stay up at Telnyx, live and
   without a stream, which is what the recovery path looks for to re-attach them to a
   healthy instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode

from engine.edge import MediaStreamEndpoint

if TYPE_CHECKING:
    from .services import ControlPlane

log = logging.getLogger(__name__)

HandOver = Callable[[MediaStreamEndpoint], Awaitable[int]]
"""Given the media endpoint once the grace is over, hands its open calls to someone else;
returns how many. The recovery path replaces the default with its own re-attach."""


async def close_for_recovery(media: MediaStreamEndpoint) -> int:
    """The default hand-over: close each remaining media socket (1012, service restart)."""
    return await media.close_all(WSCloseCode.SERVICE_RESTART, b"instance shutting down; call handed over")


@dataclass(frozen=True)
class DrainReport:
    live_at_start: int
    handed_over: int


async def drain(cp: ControlPlane, media: MediaStreamEndpoint, grace_s: float, *,
                interrupt: asyncio.Event | None = None, hand_over: HandOver = close_for_recovery) -> DrainReport:
    """Run the drain (above); returns once no media socket is open. ``interrupt`` set ends
    the grace early (a second SIGTERM)."""
    await cp.begin_drain()
    live = len(media.sessions)
    log.info("draining: %d live call(s) may run on for up to %g s; webhooks are still accepted", live, grace_s)
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(media.wait_all_closed())]
    if interrupt is not None:
        waiters.append(asyncio.ensure_future(interrupt.wait()))
    try:
        await asyncio.wait(waiters, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
    handed_over = 0
    if media.sessions:
        handed_over = await hand_over(media)
        await media.wait_all_closed()
    log.info("drained: %d call(s) handed over, the others ended", handed_over)
    return DrainReport(live_at_start=live, handed_over=handed_over)
