"""A dial's worker dies after sending it; leases run out; other workers take the attempt over
(the multi-worker crash window of control_plane/campaigns/README.md, "Exactly one dial per attempt").

The invariant: one contact, at most one send of its attempt in flight, the same command_id on
every send, and one call placed. Workers here share one process and the emulator; their clocks
are injected, so which lease has run out is decided, not raced."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from control_plane.campaigns.dialer import Dialer

from .conftest import make_settings
from .test_campaigns_dialer import _first_attempt_dies, system


class CountingClient:
    """The real Telnyx client, counting the dial sends of one worker (each may be several HTTP tries)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.dials = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def dial(self, **kwargs: Any) -> Any:
        self.dials += 1
        return await self.real.dial(**kwargs)


async def test_a_slow_resend_is_not_sent_again_by_another_worker_while_in_flight(tmp_path):
    async with system(make_settings(tmp_path), dialer=False) as s:  # lease_s 0.5
        campaign_id = await s.campaign(["+12125550001"])
        await s.start(campaign_id)
        s.emulator.switches.delay_s = 120.0  # no webhook tells the workers the dial ran
        contact = await _first_attempt_dies(s, campaign_id)  # A sent the dial (Telnyx placed it) and died
        # Telnyx is slow now: every answer takes 2 s (the client re-tries after 500 ms, then waits).
        s.emulator.faults.slow_next(20, delay_s=2.0, match="/v2/calls")
        start = contact.dial_started_at
        clients = {name: CountingClient(s.cp.telnyx_client()) for name in "BC"}
        taken_over = start + timedelta(seconds=12)  # A's lease (dial_timeout_s 10 s + 1) has run out
        b = Dialer(s.cp, worker_id="B", telnyx=clients["B"], clock=lambda: taken_over)
        await b.runner(uuid.UUID(campaign_id)).step(sweep=True)  # B re-sends
        assert clients["B"].dials == 1 and b.dial_tasks
        # One second later by C's clock (two lease_s), B's send is still waiting for Telnyx.
        c = Dialer(s.cp, worker_id="C", telnyx=clients["C"], clock=lambda: taken_over + timedelta(seconds=1))
        await c.runner(uuid.UUID(campaign_id)).step(sweep=True)
        await c.drain()
        assert clients["C"].dials == 0  # the attempt's send in flight holds its lease: no second one
        await b.drain()
        after = (await s.contacts(campaign_id))["+12125550001"]
        assert after.status == "in_progress" and after.attempts == 1
        assert len(s.emulator.dial_log) == 1 and s.emulator.dialled_more_than_once() == {}
        assert {r.command_id for r in s.dials()} == {str(contact.last_call_id)}


async def test_a_send_is_cut_at_dial_timeout_s_inside_its_lease(tmp_path):
    async with system(make_settings(tmp_path), dialer=False, dial_timeout_s=0.3) as s:
        campaign_id = await s.campaign(["+12125550001"])
        await s.start(campaign_id)
        s.emulator.faults.slow_next(5, delay_s=2.0, match="/v2/calls")  # Telnyx answers later than that
        a = Dialer(s.cp, worker_id="A")
        assert await a.runner(uuid.UUID(campaign_id)).step(sweep=False) == "worked"
        await a.drain()
        contact = (await s.contacts(campaign_id))["+12125550001"]
        # Its fate is unknown: kept for a re-send with the same command_id, its first send's window running.
        assert contact.status == "dialing" and contact.dial_started_at is not None
        assert contact.last_error == "no answer in time" and contact.attempts == 1


def test_the_send_budget_must_end_inside_telnyx_window():
    from pydantic import ValidationError

    from control_plane.campaigns.settings import CampaignSettings

    CampaignSettings(dial_timeout_s=15, resend_margin_s=15)
    with pytest.raises(ValidationError, match="dial_timeout_s"):
        CampaignSettings(dial_timeout_s=20, resend_margin_s=15)
