"""The campaigns module inside a control plane: its dialer, and what it does on a campaign call's webhooks.

:class:`CampaignRuntime` is created by :class:`~control_plane.services.ControlPlane`; it
registers :meth:`CampaignRuntime.on_event` with the webhook processor, which calls it after
every stored event has been applied to its call row. For a campaign's call it

* answers machines (``call.machine.detection.ended`` / premium): hang up, or stop the agent's
  stream, wait for the beep (``call.machine.greeting.ended``), ``speak`` the voicemail
  message and hang up on ``call.speak.ended``;
* settles the contact once the call row is final (``call.hangup`` -> retry or a terminal state).

Every Telnyx command carries a command id derived from the call, and settling is guarded by
the contact's state, so a redelivered or re-processed event changes nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine.providers.voices import ALIASES

from ..calls import command_id
from ..store import Call, StoredEvent
from ..telnyx.client import TelnyxApiError
from .dialer import Dialer, fill_variables
from .outcomes import is_machine
from .store import CampaignStore

if TYPE_CHECKING:
    from ..services import ControlPlane

log = logging.getLogger(__name__)

DETECTION_ENDED = frozenset({"call.machine.detection.ended", "call.machine.premium.detection.ended"})
GREETING_ENDED = frozenset({"call.machine.greeting.ended", "call.machine.premium.greeting.ended"})


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
            await self._machine(kind, after)
        if after.terminal and (not before.terminal or kind == "call.hangup"):
            # The event that ended the call (again, if it is being re-processed); the dialer's sweep
            # settles anything missed, so later events (recording, cost) need not look.
            await self.dialer.settle(after)

    async def _machine(self, kind: str, call: Call) -> None:
        if not is_machine(call.amd_result):
            return
        config = await (await self.store()).config(call.campaign_id)  # type: ignore[arg-type]
        if config is None:
            return
        policy = config.voicemail
        client = self.cp.telnyx_client()
        ccid = call.call_control_id
        assert ccid is not None
        try:
            if kind in DETECTION_ENDED:
                if policy.action == "hangup":
                    await client.hangup(ccid, command_id=command_id(call.id, "machine_hangup"))
                else:  # silence the agent until the beep; the message follows it
                    await client.action(ccid, "streaming_stop", command_id=command_id(call.id, "voicemail_stop"))
            elif kind in GREETING_ENDED and policy.action == "message" and policy.message:
                variables = (call.agent_config or {}).get("variables") or {}
                voice = ALIASES.get(policy.voice, policy.voice)  # natural / natural_hd
                await client.speak(ccid, fill_variables(policy.message, variables), voice=voice,
                                   language=policy.language, command_id=command_id(call.id, "voicemail_speak"))
            elif kind == "call.speak.ended" and policy.action == "message":
                await client.hangup(ccid, command_id=command_id(call.id, "voicemail_hangup"))
        except TelnyxApiError as exc:
            if exc.status != 422:
                raise
            log.info("call %s: %s after %s: %s", call.id, "command refused", kind, exc)
