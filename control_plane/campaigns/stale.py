"""Campaign calls whose webhooks went quiet: ask Telnyx whether they are still up, and close the
ones it says are over (a lost ``call.hangup`` must not hold a campaign slot for ever)."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..callstate import apply_event
from ..store import Call, utcnow
from ..telnyx.client import TelnyxApiError, TelnyxError, call_is_over

if TYPE_CHECKING:
    from .dialer import Dialer
    from .store import DialCampaign

log = logging.getLogger(__name__)


async def check_stale(dialer: Dialer, campaign: DialCampaign) -> None:
    """Live calls silent for ``stale_call_s``: ask Telnyx; end the ones it says are over."""
    store = await dialer.store()
    repo = store.repo
    now = dialer.clock()
    stale = await store.stale_calls(campaign.id, now - timedelta(seconds=dialer.settings.stale_call_s))
    if not stale:
        return
    try:
        client = dialer.telnyx_client()
    except Exception:
        return
    if not hasattr(client, "get_call"):
        return
    for call_id in stale:
        call = await repo.get_call_unscoped(call_id)
        if call is None or call.terminal or not call.call_control_id:
            continue
        try:
            info = await client.get_call(call.call_control_id)
            alive = bool(info.get("is_alive")) if isinstance(info, dict) else True
        except TelnyxApiError as exc:
            if not call_is_over(exc):
                # Not an answer about the call (a wrong API base answers 404 for every one):
                # live calls are not ended on it. Asked again at the next sweep.
                log.warning("campaign %s: cannot ask Telnyx about call %s: %s", campaign.id, call.id, exc)
                continue
            alive = False
        except TelnyxError:
            continue
        at = utcnow()
        if alive:
            await repo.update_call(call.id, functools.partial(_touched, at=at))
            continue
        log.warning("campaign %s: call %s ended without a hangup webhook; closing it", campaign.id, call.id)
        ended = await repo.update_call(call.id, functools.partial(_hung_up_unseen, at=at))
        if ended is not None:
            await dialer.settle(ended)


def _touched(call: Call, at: datetime) -> Call:
    return call.model_copy(update={"updated_at": at})


def _hung_up_unseen(call: Call, at: datetime) -> Call:
    """The hangup webhook never came: close the call as if it had, cause unknown."""
    return apply_event(call, "call.hangup", {"hangup_cause": "unknown", "hangup_source": "unknown"}, at)
