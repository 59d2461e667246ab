"""The campaigns module inside a control plane: its dialer, and what it does on a campaign call's webhooks.

:class:`CampaignRuntime` is created by :class:`~control_plane.services.ControlPlane`; it
registers :meth:`CampaignRuntime.on_event` with the webhook processor, which calls it after
every stored event has been applied to its call row. For a campaign's call it

* answers machines as every call does (:mod:`control_plane.machines`: the agent held until the
  verdict, then hang up or leave the message), with the campaign's ``voicemail`` policy;
* settles the contact once the call row is final (``call.hangup`` -> retry or a terminal state).

Every Telnyx command carries a command id derived from the call, and settling is guarded by
the contact's state, so a redelivered or re-processed event changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..machines import on_machine_event
from ..store import Call, StoredEvent
from ..voicemail import DETECTION_ENDED, GREETING_ENDED
from .dialer import Dialer
from .store import CampaignStore

if TYPE_CHECKING:
    from ..services import ControlPlane


class CampaignRuntime:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.dialer = Dialer(cp)
        cp.worker.processor.listeners.append(self.on_event)
        cp.metrics.watch_campaigns(lambda: len(self.dialer.runners))

    def start(self) -> None:
        """Start the background dialer (``campaigns.dialer``); the app and worker processes call this."""
        if self.cp.settings.campaigns.dialer and not self.cp.draining:
            self.dialer.start()

    async def stop(self) -> None:
        await self.dialer.stop()

    async def store(self) -> CampaignStore:
        return await self.dialer.store()

    def notify(self) -> None:
        self.dialer.notify()

    async def on_event(self, event: StoredEvent, before: Call, after: Call) -> None:
        if after.campaign_id is None:
            return
        kind = event.event_type
        if not after.terminal and after.call_control_id and (kind in GREETING_ENDED or kind in DETECTION_ENDED
                                                             or kind == "call.speak.ended"):
            config = await (await self.store()).config(after.campaign_id)  # type: ignore[arg-type]
            if config is not None:
                await on_machine_event(self.cp, kind, after, config.voicemail)
        if after.terminal and (not before.terminal or kind == "call.hangup"):
            # The event that ended the call (again, if it is being re-processed); the dialer's sweep
            # settles anything missed, so later events (recording, cost) need not look.
            await self.dialer.settle(after)
