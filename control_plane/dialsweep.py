"""Calls the API recorded but never saw dialled: a process that died between writing the
``queued`` row and Telnyx's dial response leaves it queued for ever, and the API would go on
reporting a call that is neither ringing nor failed.

Such a row is only given up once no dial can still be in doubt: past Telnyx's 60 s command_id
window and the time its webhooks take (``api.unconfirmed_dial_s``), a dial that did happen has
long since filled in the call's Telnyx id through a webhook (its ``client_state`` names the row).
It is marked ``failed`` with ``dial_unconfirmed``, never dialled again: calling a person twice is
worse than reporting a call that may not have rung. Campaign calls are left to the campaign
dialer, which re-sends their dial inside the window (``campaigns.dialer``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .background import SingleTask, run_rounds
from .callstate import failed
from .store import Call, utcnow

if TYPE_CHECKING:
    from .services import ControlPlane

log = logging.getLogger(__name__)

UNCONFIRMED_ERROR = {
    "code": "dial_unconfirmed",
    "message": "the service stopped while dialing this call and no webhook has shown that the dial happened; "
               "it was not dialled again",
}


def _started_by_api(call: Call) -> bool:
    return bool(call.status_history) and call.status_history[0].reason == "api"


def _give_up(call: Call, at: datetime) -> Call | None:
    # Re-checked under the row lock: a webhook may have proved the dial since the listing.
    if call.status != "queued" or call.call_control_id is not None:
        return None
    return failed(call, UNCONFIRMED_ERROR, at, "dial_unconfirmed")


class UnconfirmedDialSweeper:
    """Every ``api.sweep_interval_s``, fails the API calls left queued by a dial that never returned."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self._task = SingleTask("callagent-dial-sweeper", self._run)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        interval = self.cp.settings.api.sweep_interval_s
        await run_rounds(self.sweep, lambda: asyncio.sleep(interval), what="dial sweeper: sweep",
                         interval_s=interval, log=log)

    async def sweep(self, now: datetime | None = None) -> int:
        """Give up on every unconfirmed API dial older than the setting; returns how many."""
        now = now or utcnow()
        repo = await self.cp.repository()
        cutoff = now - timedelta(seconds=self.cp.settings.api.unconfirmed_dial_s)
        given_up = 0
        # One batch a sweep: such rows come only from crashes, and campaign rows in the listing
        # leave it within minutes (the dialer settles them).
        for call in await repo.list_unconfirmed_dials(cutoff, limit=500):
            if not _started_by_api(call):
                continue
            ended = await repo.update_call(call.id, lambda c: _give_up(c, now))
            if ended is not None and ended.status == "failed" and ended.error == UNCONFIRMED_ERROR:
                given_up += 1
                log.warning("call %s: dial never confirmed; marked failed (dial_unconfirmed)", call.id)
        return given_up
