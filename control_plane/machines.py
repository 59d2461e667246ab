"""Answering machines, on every call dialled with detection: the agent is held until the verdict.

A call dialled with ``answering_machine_detection`` (an API start or a campaign's) is dialled
*without* its media stream, so no agent greets a machine. On Telnyx's verdict
(``call.machine.detection.ended`` or its premium variant):

* a person (``human``, ``human_residence``, ``human_business``, ``not_sure``, ``silence``):
  ``streaming_start`` with the call's stream credential, and the agent begins;
* a machine: per the call's :class:`~.voicemail.VoicemailPolicy` hang up, or wait for the
  greeting's end (``call.machine.greeting.ended``, sent for ``detect_beep`` / ``greeting_end`` /
  ``premium``), ``speak`` the message and hang up on ``call.speak.ended``.

The verdict is stored on the call (``amd_result``) and reported as the ``call.machine_detection``
event. Every command carries a command id derived from the call and the step, so a redelivered
or re-processed webhook changes nothing. A call dialled with a stream before this module (or
whose stream is already up) gets ``streaming_stop`` before its message instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine.providers.voices import ALIASES

from .calls import command_id
from .store import Call, StoredEvent
from .streamauth import stream_target
from .telnyx.client import TelnyxApiError
from .voicemail import DETECTION_ENDED, GREETING_ENDED, VoicemailPolicy, fill_variables, is_machine

if TYPE_CHECKING:
    from .services import ControlPlane

log = logging.getLogger(__name__)

HANGUP_ON_MACHINE = VoicemailPolicy()
_HANDLED = DETECTION_ENDED | GREETING_ENDED | {"call.speak.ended"}


def call_policy(call: Call) -> VoicemailPolicy:
    """A call's own policy (``agent_config.voicemail``); unset: hang up on a machine."""
    raw = (call.agent_config or {}).get("voicemail")
    if isinstance(raw, dict):
        try:
            return VoicemailPolicy.model_validate(raw)
        except ValueError:
            log.warning("call %s: stored voicemail policy no longer valid; hanging up on machines", call.id)
    return HANGUP_ON_MACHINE


async def on_machine_event(cp: ControlPlane, kind: str, call: Call, policy: VoicemailPolicy) -> None:
    """Act on one AMD or speak webhook of a live call (already applied to ``call``)."""
    if kind not in _HANDLED or call.terminal or not call.call_control_id:
        return
    client = cp.telnyx_client()
    ccid = call.call_control_id
    machine = is_machine(call.amd_result)
    try:
        if kind in DETECTION_ENDED and not machine:
            if call.stream_state is None:  # held for the verdict: the agent starts now
                target = stream_target(cp, call.id)
                await client.streaming_start(ccid, target.url, stream_auth_token=target.auth_token,
                                             command_id=command_id(call.id, "stream_after_amd"))
        elif kind in DETECTION_ENDED:
            if policy.action == "hangup":
                await client.hangup(ccid, command_id=command_id(call.id, "machine_hangup"))
            elif call.stream_state in ("started",):  # dialled with its stream: silence the agent
                await client.action(ccid, "streaming_stop", command_id=command_id(call.id, "voicemail_stop"))
        elif kind in GREETING_ENDED and machine and policy.action == "message" and policy.message:
            variables = (call.agent_config or {}).get("variables") or {}
            voice = ALIASES.get(policy.voice, policy.voice)  # natural / natural_hd
            await client.speak(ccid, fill_variables(policy.message, variables), voice=voice,
                               language=policy.language, command_id=command_id(call.id, "voicemail_speak"))
        elif kind == "call.speak.ended" and machine and policy.action == "message":
            await client.hangup(ccid, command_id=command_id(call.id, "voicemail_hangup"))
    except TelnyxApiError as exc:
        if exc.status != 422:
            raise
        log.info("call %s: command refused after %s: %s", call.id, kind, exc)


class MachineHandler:
    """Registered with the webhook processor: handles the calls that are no campaign's (the
    campaign runtime handles its own with the campaign's policy, through :func:`on_machine_event`)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        cp.worker.processor.listeners.append(self.on_event)

    async def on_event(self, event: StoredEvent, before: Call, after: Call) -> None:
        if after.campaign_id is None and event.event_type in _HANDLED:
            await on_machine_event(self.cp, event.event_type, after, call_policy(after))
