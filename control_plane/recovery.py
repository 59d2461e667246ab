"""Calls that are live but have lost their media stream get it back, or are ended.

A process that dies mid-call leaves the call up at Telnyx, billed, with nobody talking, and
its row ``answered`` for ever. Each open stream holds a lease (:mod:`.streamleases`) renewed
every third of ``streams.lease_s``; when its socket closes the lease is cut to
``streams.drop_grace_s`` (long enough for a hangup's webhook). A call still ``answered`` in the
store whose lease has lapsed (the instance died, the stream dropped, ``streaming.stopped`` or
``streaming.failed``, or answered with no stream at all past ``streams.answer_grace_s``) is
claimed by one instance, which asks Telnyx (``GET /calls/{id}``):

* alive: ``streaming_start`` to this instance's media URL with a fresh credential marked as a
  re-attach; the agent that takes the stream resumes the conversation (:mod:`.pipeline`). A
  stream that never comes is tried again, up to ``streams.max_reattach`` times, then hung up;
* gone (``is_alive`` false, or the error codes 90018 "already ended" or 90015 "invalid call
  control id" on an id Telnyx gave us: :func:`~.telnyx.client.call_is_over`; a 404 without
  them is a wrong URL, not an ended call): the row ends with the reason ``lost_after_crash``
  at Telnyx's ``end_time`` when it gives one, so it is billed for the minutes it was up (the
  campaign's slot is freed and its contact settled). A call that ended less than
  ``streams.hangup_grace_s`` ago is left to its hangup webhook, which Telnyx may still be
  retrying (an instance slow to answer webhooks under load gets them late, not never).

The sweep runs at start-up, every ``streams.sweep_interval_s``, and when a ``streaming.*``
webhook says a live call's stream stopped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .background import SingleTask, run_rounds
from .callstate import advance
from .store import Call, utcnow
from .streamauth import stream_target
from .streamleases import MemoryStreamLeases, StreamLeases
from .telnyx.client import TelnyxApiError, TelnyxError, call_is_over
from .voicemail import is_machine

if TYPE_CHECKING:
    from .services import ControlPlane

log = logging.getLogger(__name__)

LOST_REASON = "lost_after_crash"
GIVEN_UP_REASON = "stream_not_restored"


@dataclass
class SweepCounts:
    reattached: int = 0
    ended: int = 0
    hung_up: int = 0
    deferred: int = 0


def lost(call: Call, at: datetime, reason: str, ended_at: datetime | None = None) -> Call | None:
    """The row of a call Telnyx no longer has (re-checked under the row lock: a webhook may have won).
    It ended when Telnyx says (``ended_at``, its ``end_time``) if it says, else now: the call is
    billed for the minutes it was up, not for the time no instance was there to notice its end."""
    if call.terminal:
        return None
    end = call.ended_at or (ended_at if ended_at is not None and ended_at <= at else at)
    if call.answered_at is not None and end < call.answered_at:
        end = call.answered_at
    ended = call.model_copy(update={"ended_at": end})
    return advance(ended, "completed" if call.answered_at is not None else "failed", at, reason)


def _ended_at(info: Any) -> datetime | None:
    value = info.get("end_time") if isinstance(info, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class StreamRecovery:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.instance = secrets.token_hex(6)
        self.leases: StreamLeases = MemoryStreamLeases()
        self._open: dict[UUID, str] = {}  # the streams this process carries: call id -> lease value
        self._wake = asyncio.Event()
        self._sweeper = SingleTask("callagent-stream-recovery", self._run_sweeps)
        self._heartbeat = SingleTask("callagent-stream-leases", self._run_heartbeat)

    @property
    def settings(self) -> Any:
        return self.cp.settings.streams

    def start(self) -> None:
        self._heartbeat.start()
        if self.settings.recovery and self.cp.settings.telnyx_api_key is not None:
            self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()
        await self._heartbeat.stop()

    def notify(self) -> None:
        """A webhook says a stream stopped: sweep now rather than at the next interval."""
        self._wake.set()

    # -- the streams of this process ----------------------------------------------------------

    async def opened(self, call_id: UUID) -> str:
        """A stream of ``call_id`` started here; returns its lease value, for :meth:`closed`."""
        value = f"{self.instance}:{secrets.token_hex(4)}"
        self._open[call_id] = value
        await self.leases.hold(call_id, value, self.settings.lease_s)
        return value

    async def closed(self, call_id: UUID, value: str) -> None:
        """Its socket closed. If the call is still up, the sweep takes it after the grace."""
        if self._open.get(call_id) == value:
            del self._open[call_id]
        await self.leases.release(call_id, value, self.settings.drop_grace_s)
        self.notify()

    async def _run_heartbeat(self) -> None:
        interval = self.settings.lease_s / 3

        async def renew() -> None:
            if self._open:
                await self.leases.renew(dict(self._open), self.settings.lease_s)

        await run_rounds(renew, lambda: asyncio.sleep(interval), what="stream leases: renewal",
                         interval_s=interval, log=log)

    # -- the sweep ----------------------------------------------------------------------------

    async def _run_sweeps(self) -> None:
        interval = self.settings.sweep_interval_s

        async def round_() -> None:
            self._wake.clear()
            await self.sweep()

        async def pause() -> None:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass

        await run_rounds(round_, pause, what="stream recovery: sweep", interval_s=interval, log=log)

    async def sweep(self, now: datetime | None = None) -> SweepCounts:
        """Act on every live call without a stream that this instance can claim."""
        now = now or utcnow()
        counts = SweepCounts()
        repo = await self.cp.repository()
        calls = await repo.list_answered_calls(now - timedelta(seconds=self.settings.answer_grace_s),
                                               excluding=self._open.keys())
        # A machine's call has no stream on purpose (control_plane.machines leaves the voicemail).
        calls = [c for c in calls if c.call_control_id and c.id not in self._open and not is_machine(c.amd_result)]
        if not calls:
            return counts
        held = await self.leases.held(c.id for c in calls)
        for call in calls:
            if call.id in held:
                continue
            attempt = await self.leases.claim(call.id, f"{self.instance}:recovering",
                                              self.settings.attach_timeout_s)
            if attempt is None:
                continue  # another instance got there first
            await self._recover(call, attempt, now, counts)
        return counts

    async def _recover(self, call: Call, attempt: int, now: datetime, counts: SweepCounts) -> None:
        client = self.cp.telnyx_client()
        ccid = call.call_control_id
        assert ccid is not None
        try:
            info = await client.get_call(ccid)
            alive = bool(info.get("is_alive")) if isinstance(info, dict) else False
        except TelnyxApiError as exc:
            if not call_is_over(exc):  # not about the call (e.g. a 404 from a wrong API base)
                log.warning("call %s: cannot ask Telnyx whether it is alive: %s", call.id, exc)
                return  # the claim lapses; the next sweep asks again
            info, alive = None, False
        except TelnyxError as exc:
            log.warning("call %s: cannot ask Telnyx whether it is alive: %s", call.id, exc)
            return
        if not alive:
            ended_at = _ended_at(info)
            if ended_at is not None and now - ended_at < timedelta(seconds=self.settings.hangup_grace_s):
                counts.deferred += 1  # its hangup webhook may still come, and says how it ended
                return
            await self._end(call, now, LOST_REASON, ended_at)
            counts.ended += 1
            return
        if attempt > self.settings.max_reattach:
            log.warning("call %s: its media stream did not come back after %d tries; hanging up",
                        call.id, attempt - 1)
            try:
                await client.hangup(ccid)
            except TelnyxError as exc:
                log.warning("call %s: hangup after a lost stream failed: %s", call.id, exc)
            await self._end(call, now, GIVEN_UP_REASON)
            counts.hung_up += 1
            return
        target = stream_target(self.cp, call.id, resume=True)
        try:
            await client.streaming_start(ccid, stream_url=target.url, stream_track="inbound_track",
                                         stream_bidirectional_mode="rtp", stream_bidirectional_codec="PCMU",
                                         stream_auth_token=target.auth_token)
        except TelnyxError as exc:
            # 422 for a call that ended meanwhile: the next sweep finds it gone.
            log.warning("call %s: re-attaching its media stream failed: %s", call.id, exc)
            return
        counts.reattached += 1
        log.warning("call %s: media stream lost; re-attached (try %d)", call.id, attempt)

    async def _end(self, call: Call, now: datetime, reason: str, ended_at: datetime | None = None) -> None:
        repo = await self.cp.repository()
        ended = await repo.update_call(call.id, lambda c: lost(c, now, reason, ended_at))
        if ended is None or not ended.terminal:
            return
        log.warning("call %s: ended without a hangup webhook (%s)", call.id, reason)
        if ended.campaign_id is not None:
            await self.cp.campaigns.dialer.settle(ended)  # frees its slot, settles its contact
