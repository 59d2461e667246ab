"""campaign_contacts as the dialer's queue: one SQL text for PostgreSQL and SQLite.

The contact row *is* the queue entry:

``pending | retry_scheduled | outside_window`` (due at ``next_attempt_at``)
  -> ``claimed`` (a worker's ``claim_token`` + ``lease_until``; nothing dialled yet)
  -> ``dialing`` (attempt committed: ``attempts`` += 1, ``last_call_id`` = the attempt's call row,
     inserted in the same transaction; the dial is being or was sent)
  -> ``in_progress`` (Telnyx accepted the dial) -> the call's outcome:
  ``retry_scheduled`` or one terminal state: ``completed | failed | dnc_skipped | cancelled``
  (``erased`` by a GDPR erasure).

Claims are ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`` on PostgreSQL, so
any number of workers take disjoint rows; on SQLite the same statement runs under the
repository's single writer. Every later transition is guarded by the claim token (or the
attempt's call id) and the expected status: a worker that lost its lease changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from ..crypto import DataKeys
from ..store import Call, CallCodec, Database, utcnow
from .models import CampaignConfig
from .outcomes import Decision, call_id_for
from .rows import (
    ACTIVE,
    DUE,
    LIVE_CALL,
    TERMINAL_CALL,
    Applied,
    CampaignError,
    Commit,
    ContactRow,
    DialCampaign,
    PreparedContact,
    as_time,
    as_uuid,
    marks,
    value_rows,
)


class ContactQueue:
    """The contacts of every campaign, as the dialer's work queue (see the module docstring)."""

    def __init__(self, db: Database, keys: DataKeys, calls: CallCodec,
                 config: Callable[[UUID], Awaitable[CampaignConfig | None]]) -> None:
        self.db = db
        self.row_lock = self.db.for_no_key_update  # contacts reference the campaign row: the weaker lock
        self._cipher = keys.cipher
        self._hasher = keys.hasher
        self._calls = calls
        self._config = config

    # -- contacts: upload ------------------------------------------------------------------

    def _contact(self, row: dict[str, Any]) -> ContactRow:
        cipher = self._cipher
        data = {k: row[k] for k in ContactRow.model_fields if k in row and k not in ("phone", "data")}
        data["phone"] = cipher.open(row["phone_enc"], "campaign_contacts.phone")
        data["data"] = cipher.open_json(row["data_enc"], "campaign_contacts.data")
        if data.get("cost") is None:
            data["cost"] = Decimal(0)
        else:
            data["cost"] = Decimal(str(data["cost"]))
        return ContactRow.model_validate(data)

    async def import_batch(self, org_id: UUID, campaign_id: UUID, contacts: Sequence[PreparedContact]
                           ) -> tuple[set[str], set[str]]:
        """Insert a batch; returns the hashes inserted and, of those, the ones on the DNC list."""
        if not contacts:
            return set(), set()
        now = utcnow()
        cipher = self._cipher
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                f"SELECT status FROM campaigns WHERE id = $1 AND org_id = $2 {self.row_lock}", campaign_id, org_id)
            if row is None:
                raise CampaignError("not_found", "no such campaign")
            if row["status"] in ("completed", "cancelled"):
                raise CampaignError("invalid_state", f"the campaign is {row['status']}", row["status"])
            hashes = [c.phone_hash for c in contacts]
            dnc_rows = await conn.fetch(
                f"SELECT phone_hash FROM dnc_entries WHERE org_id = $1 AND phone_hash IN ({marks(len(hashes), 2)})",
                org_id, *hashes)
            dnc = {r["phone_hash"] for r in dnc_rows}
            seq_row = await conn.fetchrow(
                "UPDATE campaign_dialer SET next_seq = next_seq + $2 WHERE campaign_id = $1 RETURNING next_seq",
                campaign_id, len(contacts))
            base = int(seq_row["next_seq"]) - len(contacts) if seq_row else 0
            width = 13
            args: list[Any] = []
            for i, c in enumerate(contacts):
                skipped = c.phone_hash in dnc
                args += [uuid4(), org_id, campaign_id, cipher.seal(c.phone, "campaign_contacts.phone"), c.phone_hash,
                         cipher.seal_json(c.data, "campaign_contacts.data"), "dnc_skipped" if skipped else "pending",
                         now, base + i, now, "dnc" if skipped else None, now if skipped else None, now]
            inserted = await conn.fetch(
                "INSERT INTO campaign_contacts (id, org_id, campaign_id, phone_enc, phone_hash, data_enc, status,"
                " created_at, seq, next_attempt_at, outcome, finished_at, updated_at) VALUES "
                f"{value_rows(len(contacts), width)}"
                " ON CONFLICT (campaign_id, phone_hash) DO NOTHING RETURNING phone_hash",
                *args)
        added = {r["phone_hash"] for r in inserted}
        return added, added & dnc

    async def count_contacts(self, campaign_id: UUID) -> int:
        row = await self.db.fetchrow("SELECT count(*) AS n FROM campaign_contacts WHERE campaign_id = $1",
                                        campaign_id)
        return int(row["n"]) if row else 0

    async def contacts(self, campaign_id: UUID) -> list[ContactRow]:
        rows = await self.db.fetch("SELECT * FROM campaign_contacts WHERE campaign_id = $1 ORDER BY seq, id",
                                      campaign_id)
        return [self._contact(r) for r in rows]

    async def contact(self, contact_id: UUID) -> ContactRow | None:
        row = await self.db.fetchrow("SELECT * FROM campaign_contacts WHERE id = $1", contact_id)
        return None if row is None else self._contact(row)

    # -- contacts: the queue ---------------------------------------------------------------

    async def claim_due(self, campaign_id: UUID, worker: str, lease_s: float, now: datetime) -> ContactRow | None:
        """Take the next due contact (``claimed``, a fresh token and lease), or None."""
        rows = await self.db.fetch(
            "UPDATE campaign_contacts SET status = 'claimed', claim_token = $2, claimed_by = $3, lease_until = $4,"
            " updated_at = $5 WHERE id IN (SELECT id FROM campaign_contacts WHERE campaign_id = $1"
            f" AND status IN {DUE} AND next_attempt_at <= $5 ORDER BY next_attempt_at, seq LIMIT 1"
            f" {self.db.skip_locked}) RETURNING *",
            campaign_id, uuid4(), worker, now + timedelta(seconds=lease_s), now,
        )
        return self._contact(rows[0]) if rows else None

    async def claim_expired(self, campaign_id: UUID, worker: str, lease_s: float, now: datetime,
                            limit: int = 20) -> list[ContactRow]:
        """Take over ``claimed``/``dialing`` rows whose worker's lease ran out (status unchanged)."""
        rows = await self.db.fetch(
            "UPDATE campaign_contacts SET claim_token = $2, claimed_by = $3, lease_until = $4, updated_at = $5"
            " WHERE id IN (SELECT id FROM campaign_contacts WHERE campaign_id = $1"
            " AND status IN ('claimed', 'dialing') AND lease_until < $5 ORDER BY lease_until"
            f" LIMIT $6 {self.db.skip_locked}) RETURNING *",
            campaign_id, uuid4(), worker, now + timedelta(seconds=lease_s), now, limit,
        )
        return [self._contact(r) for r in rows]

    async def release(self, contact: ContactRow, now: datetime, *, status: str | None = None,
                      next_attempt_at: datetime | None = None) -> bool:
        """Give a ``claimed`` contact back undialled (to its due state, or ``status`` at ``next_attempt_at``)."""
        status = status or ("pending" if contact.attempts == 0 else "retry_scheduled")
        n = await self.db.execute(
            "UPDATE campaign_contacts SET status = $3, next_attempt_at = COALESCE($4, next_attempt_at),"
            " claim_token = NULL, claimed_by = NULL, lease_until = NULL, updated_at = $5"
            " WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
            contact.id, contact.claim_token, status, next_attempt_at, now,
        )
        return n == 1

    async def finish_claimed(self, contact: ContactRow, now: datetime, status: str, outcome: str) -> bool:
        """End a ``claimed`` contact without dialling (``dnc_skipped``, ``cancelled``)."""
        n = await self.db.execute(
            "UPDATE campaign_contacts SET status = $3, outcome = $4, claim_token = NULL, claimed_by = NULL,"
            " lease_until = NULL, finished_at = $5, updated_at = $5"
            " WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
            contact.id, contact.claim_token, status, outcome, now,
        )
        return n == 1

    async def shared_now(self) -> datetime:
        """The clock every worker's ``dial_started_at`` is stamped and read on, so that the Telnyx
        de-duplication window is measured on one clock: the database's on PostgreSQL (workers on
        several hosts, whose clocks may disagree by more than ``resend_margin_s``), this host's on
        SQLite (a single process). Leases stay on the workers' clocks: a takeover that skew makes
        early re-sends the same command_id inside the window, which Telnyx de-duplicates."""
        if self.db.dialect == "postgres":
            row = await self.db.fetchrow("SELECT now() AS t")
            stamp = as_time(row["t"]) if row else None
            if stamp is not None:
                return stamp
        return utcnow()

    async def renew(self, contact: ContactRow, status: str, lease_until: datetime, now: datetime,
                    dial_started_at: datetime | None = None) -> bool:
        """Extend our lease (the fencing check before a dial): False when another worker took the row."""
        n = await self.db.execute(
            "UPDATE campaign_contacts SET lease_until = $4, updated_at = $5,"
            " dial_started_at = COALESCE(dial_started_at, $6)"
            " WHERE id = $1 AND claim_token = $2 AND status = $3",
            contact.id, contact.claim_token, status, lease_until, now, dial_started_at,
        )
        return n == 1

    async def live_calls(self, campaign_id: UUID) -> int:
        row = await self.db.fetchrow(
            f"SELECT count(*) AS n FROM calls WHERE campaign_id = $1 AND status IN {LIVE_CALL}", campaign_id)
        return int(row["n"]) if row else 0

    async def commit_dial(self, campaign: DialCampaign, contact: ContactRow, now: datetime, lease_s: float,
                          make_call: Callable[[UUID, str, int], Call]) -> Commit:
        """Commit the contact's next attempt: under the campaign's row lock (one committer at a time per
        campaign), check it is running and under its live-call cap, pick the caller number (round robin,
        skipping numbers at their cap), move the contact to ``dialing`` and insert the attempt's call row
        (id from (contact, attempt)), all in one transaction. The dial follows the commit."""
        config = campaign.config
        assert config is not None
        # Stamped before the transaction: a little early, which only ends re-sends sooner.
        dial_started_at = await self.shared_now()
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(f"SELECT status FROM campaigns WHERE id = $1 {self.row_lock}", campaign.id)
            if row is None or row["status"] != "running":
                return Commit("not_running", campaign_status=row["status"] if row else None)
            live = await conn.fetchrow(
                f"SELECT count(*) AS n FROM calls WHERE campaign_id = $1 AND status IN {LIVE_CALL}", campaign.id)
            if live and int(live["n"]) >= config.max_concurrent_calls:
                return Commit("at_capacity")
            dialer = await conn.fetchrow("SELECT next_from_index FROM campaign_dialer WHERE campaign_id = $1",
                                         campaign.id)
            numbers = list(config.caller_numbers)
            start = int(dialer["next_from_index"]) % len(numbers) if dialer else 0
            busy: dict[str, int] = {}
            cap = config.max_calls_per_number
            hashes = [self._hasher.phone(n) for n in numbers]
            if cap is not None:
                rows = await conn.fetch(
                    f"SELECT from_hash, count(*) AS n FROM calls WHERE org_id = $1 AND status IN {LIVE_CALL}"
                    f" AND from_hash IN ({marks(len(hashes), 2)}) GROUP BY from_hash", campaign.org_id, *hashes)
                busy = {r["from_hash"]: int(r["n"]) for r in rows}
            chosen = None
            for i in range(len(numbers)):
                index = (start + i) % len(numbers)
                if cap is None or busy.get(hashes[index], 0) < cap:
                    chosen = index
                    break
            if chosen is None:
                return Commit("numbers_busy")
            attempt = contact.attempts + 1
            call_id = call_id_for(contact.id, attempt)
            updated = await conn.execute(
                "UPDATE campaign_contacts SET status = 'dialing', attempts = $3, last_call_id = $4,"
                " dial_started_at = $7, lease_until = $6, last_error = NULL, updated_at = $5"
                " WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
                contact.id, contact.claim_token, attempt, call_id, now, now + timedelta(seconds=lease_s),
                dial_started_at,
            )
            if updated != 1:
                return Commit("lost")
            call = await self._calls.insert(conn, make_call(call_id, numbers[chosen], attempt))
            await conn.execute("UPDATE campaign_dialer SET next_from_index = $2 WHERE campaign_id = $1",
                               campaign.id, (chosen + 1) % len(numbers))
        return Commit("committed", call=call)

    async def mark_dialled(self, contact_id: UUID, call_id: UUID, now: datetime) -> bool:
        """Telnyx accepted the attempt's dial: ``dialing`` -> ``in_progress`` (whoever recorded it)."""
        n = await self.db.execute(
            "UPDATE campaign_contacts SET status = 'in_progress', claim_token = NULL, claimed_by = NULL,"
            " lease_until = NULL, last_error = NULL, updated_at = $3"
            " WHERE id = $1 AND last_call_id = $2 AND status = 'dialing'",
            contact_id, call_id, now,
        )
        return n == 1

    async def dial_later(self, contact: ContactRow, call_id: UUID, now: datetime, retry_in_s: float, error: str,
                         *, not_sent: bool) -> None:
        """The dial's fate is open (timeout, 5xx) or it was refused unexecuted (429): keep the attempt in
        ``dialing`` and let the lease run out soon, so a worker re-sends it with the same command_id.
        ``not_sent`` (Telnyx did not execute it) also clears ``dial_started_at``: a later send is a first one."""
        clear = ", dial_started_at = NULL" if not_sent else ""
        await self.db.execute(
            f"UPDATE campaign_contacts SET lease_until = $3, last_error = $4, updated_at = $5{clear}"
            " WHERE id = $1 AND last_call_id = $2 AND status = 'dialing'",
            contact.id, call_id, now + timedelta(seconds=retry_in_s), error[:500], now,
        )

    async def apply_outcome(self, call: Call, now: datetime,
                            decide: Callable[[ContactRow, CampaignConfig, str], tuple[Decision, Decimal]],
                            ) -> Applied | None:
        """Settle the contact whose current attempt is ``call`` (idempotent: only from dialing/in_progress)."""
        if call.campaign_id is None:
            return None
        config = await self._config(call.campaign_id)
        if config is None:
            return None
        current = await self.db.fetchrow("SELECT status FROM campaign_contacts WHERE last_call_id = $1", call.id)
        if current is None or current["status"] not in ("dialing", "in_progress"):
            return None  # settled already (or never a campaign attempt): no write transaction
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                f"SELECT * FROM campaign_contacts WHERE last_call_id = $1 {self.db.for_update}", call.id)
            if row is None or row["status"] not in ("dialing", "in_progress"):
                return None
            contact = self._contact(row)
            campaign = await conn.fetchrow("SELECT status FROM campaigns WHERE id = $1", contact.campaign_id)
            decision, cost = decide(contact, config, campaign["status"] if campaign else "cancelled")
            finished = None if decision.status == "retry_scheduled" else now
            await conn.execute(
                "UPDATE campaign_contacts SET status = $2, outcome = $3, success = $4, next_attempt_at = $5,"
                " finished_at = $6, cost = cost + $7, claim_token = NULL, claimed_by = NULL, lease_until = NULL,"
                " dial_started_at = NULL, updated_at = $8 WHERE id = $1",
                contact.id, decision.status, decision.outcome, decision.success, decision.next_attempt_at,
                finished, cost, now,
            )
            listener = self._calls.hooks.listener  # the store's change listener (the webhook outbox)
            if listener is not None:  # campaign.progress, in this transaction
                await listener.campaign_changed(conn, contact.org_id, contact.campaign_id,
                                                campaign["status"] if campaign else "cancelled", completed=False)
        return Applied(contact.id, contact.campaign_id, decision)

    async def settle_success(self, contact_id: UUID, success: bool) -> None:
        await self.db.execute(
            "UPDATE campaign_contacts SET success = $2 WHERE id = $1 AND status = 'completed' AND success IS NULL",
            contact_id, success)

    async def has_unfinished(self, campaign_id: UUID) -> bool:
        """Contacts mid-attempt, or answered with their success not yet settled."""
        row = await self.db.fetchrow(
            f"SELECT count(*) AS n FROM campaign_contacts WHERE campaign_id = $1 AND (status IN {ACTIVE}"
            " OR (status = 'completed' AND success IS NULL))", campaign_id)
        return bool(row and int(row["n"]))

    # -- maintenance queries ---------------------------------------------------------------

    async def unsettled_calls(self, campaign_id: UUID, limit: int = 100) -> list[UUID]:
        """Calls that ended while their contact still shows them live (a missed or failed hook)."""
        rows = await self.db.fetch(
            "SELECT cc.last_call_id AS call_id FROM campaign_contacts cc JOIN calls c ON c.id = cc.last_call_id"
            f" WHERE cc.campaign_id = $1 AND cc.status IN ('dialing', 'in_progress') AND c.status IN {TERMINAL_CALL}"
            " LIMIT $2", campaign_id, limit)
        return [as_uuid(r["call_id"]) for r in rows]  # type: ignore[misc]

    async def stale_calls(self, campaign_id: UUID, before: datetime, limit: int = 20) -> list[UUID]:
        """Live calls of in-progress contacts that have not changed since ``before`` (lost webhooks?)."""
        rows = await self.db.fetch(
            "SELECT cc.last_call_id AS call_id FROM campaign_contacts cc JOIN calls c ON c.id = cc.last_call_id"
            f" WHERE cc.campaign_id = $1 AND cc.status = 'in_progress' AND c.status IN {LIVE_CALL}"
            " AND c.updated_at < $2 ORDER BY c.updated_at LIMIT $3", campaign_id, before, limit)
        return [as_uuid(r["call_id"]) for r in rows]  # type: ignore[misc]

    async def unscored(self, campaign_id: UUID, finished_before: datetime, limit: int = 100
                       ) -> list[tuple[UUID, UUID | None, datetime | None]]:
        """Answered contacts whose success is still open, finished before ``finished_before``."""
        rows = await self.db.fetch(
            "SELECT id, last_call_id, finished_at FROM campaign_contacts WHERE campaign_id = $1"
            " AND status = 'completed' AND success IS NULL AND finished_at <= $2 LIMIT $3",
            campaign_id, finished_before, limit)
        return [(as_uuid(r["id"]), as_uuid(r["last_call_id"]), as_time(r["finished_at"])) for r in rows]  # type: ignore[misc]
