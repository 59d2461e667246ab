"""One INFO line, and one count, per step of a call's life: started, answered, ended.

Called where the call row changes (the dial's answer, the webhook that moved its status), so
an operator can follow any call by its id in the logs. Lines carry the call id and status, never
phone numbers (personal data).
"""

from __future__ import annotations

import logging

from .metrics import ControlPlaneMetrics
from .store import Call

log = logging.getLogger("control_plane.calls.lifecycle")


def started(metrics: ControlPlaneMetrics, call: Call, how: str) -> None:
    """The call exists at Telnyx: dialled (``how`` = api or campaign) or ringing in (inbound)."""
    metrics.call_step("started")
    log.info("call %s started: %s via %s", call.id, call.direction, how, extra={"call_id": call.id})


def status_changed(metrics: ControlPlaneMetrics, before: Call, after: Call) -> None:
    """Log the steps an update of the call row took (nothing when its status stayed)."""
    if after.status == before.status:
        return
    if after.status == "answered":
        metrics.call_step("answered")
        log.info("call %s answered", after.id, extra={"call_id": after.id})
    elif after.terminal and not before.terminal:
        metrics.call_step("ended")
        log.info("call %s ended: %s (%s)", after.id, after.status, after.hangup_cause or "no cause given",
                 extra={"call_id": after.id})
