"""The campaign tables: campaigns (+ campaign_dialer) and campaign_contacts as the dialer's queue.

One SQL text for PostgreSQL and SQLite, through the repository's connections (so sealing,
hashing and the dialects stay the repository's). The contact row *is* the queue entry:

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

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict

from ..store import Call, utcnow
from ..store.base import SqlRepository
from .models import ACTIVE_STATUSES, DUE_STATUSES, CampaignConfig
from .outcomes import Decision, call_id_for

LIVE_CALL = "('queued', 'initiated', 'answered')"
TERMINAL_CALL = "('completed', 'failed', 'busy', 'no_answer', 'canceled')"
DUE = "('pending', 'retry_scheduled', 'outside_window')"
ACTIVE = "('claimed', 'dialing', 'in_progress')"
NOT_DONE = "('pending', 'retry_scheduled', 'outside_window', 'claimed', 'dialing', 'in_progress')"
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"draft"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused"}), "running"),
    "cancel": (frozenset({"draft", "running", "paused"}), "cancelled"),
}
assert DUE_STATUSES == ("pending", "retry_scheduled", "outside_window") and len(ACTIVE_STATUSES) == 3


class CampaignError(Exception):
    """A campaign operation refused: ``code`` says why (not_found, invalid_state, no_contacts...)."""

    def __init__(self, code: str, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class DialCampaign:
    id: UUID
    org_id: UUID
    name: str
    status: str
    agent_config: dict[str, Any]
    config: CampaignConfig | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ContactRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    org_id: UUID
    campaign_id: UUID
    phone: str | None
    phone_hash: str
    data: dict[str, Any] | None
    status: str
    attempts: int
    last_call_id: UUID | None
    seq: int = 0
    next_attempt_at: datetime | None = None
    claim_token: UUID | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    dial_started_at: datetime | None = None
    outcome: str | None = None
    success: bool | None = None
    cost: Decimal = Decimal(0)
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PreparedContact:
    phone: str
    phone_hash: str
    data: dict[str, Any]
    row: int


@dataclass(frozen=True, slots=True)
class Commit:
    """What :meth:`CampaignStore.commit_dial` did: ``call`` set when the attempt is committed."""

    result: str  # committed | not_running | at_capacity | numbers_busy | lost
    call: Call | None = None
    campaign_status: str | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    contact_id: UUID
    campaign_id: UUID
    decision: Decision


def _uuid(value: Any) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(str(value))


@functools.lru_cache(maxsize=64)
def _rows(n: int, width: int, start: int = 1) -> str:
    return ", ".join("(" + ", ".join(f"${start + i * width + j}" for j in range(width)) + ")" for i in range(n))


def _marks(n: int, start: int) -> str:
    return ", ".join(f"${start + i}" for i in range(n))


class CampaignStore:
    def __init__(self, repo: SqlRepository) -> None:
        if not isinstance(repo, SqlRepository):
            raise TypeError("campaigns need one of the SQL repositories")
        self.repo = repo
        self.postgres = repo.dialect == "postgres"
        self.lock = "FOR NO KEY UPDATE" if self.postgres else ""
        self.skip_locked = "FOR UPDATE SKIP LOCKED" if self.postgres else ""
        self.for_update = repo.for_update
        self._configs: dict[UUID, CampaignConfig | None] = {}

    # -- campaigns ---------------------------------------------------------------------

    def _campaign(self, row: dict[str, Any], dialer: dict[str, Any] | None) -> DialCampaign:
        config = self._configs.get(_uuid(row["id"]))  # type: ignore[arg-type]
        if config is None and dialer is not None:
            config = self._dialer_config(dialer)
            self._configs[_uuid(row["id"])] = config  # type: ignore[index]
        started = dialer.get("started_at") if dialer else None
        finished = dialer.get("finished_at") if dialer else None
        return DialCampaign(
            id=_uuid(row["id"]), org_id=_uuid(row["org_id"]), name=row["name"], status=row["status"],  # type: ignore[arg-type]
            agent_config=self.repo.campaign_agent_config(row), config=config,
            created_at=_time(row["created_at"]), updated_at=_time(row["updated_at"]),  # type: ignore[arg-type]
            started_at=_time(started), finished_at=_time(finished),
        )

    async def create_campaign(self, org_id: UUID, name: str, agent_config: dict[str, Any],
                              config: CampaignConfig) -> DialCampaign:
        now = utcnow()
        campaign_id = uuid4()
        agent_config_enc, from_enc = self.repo.seal_campaign(agent_config, config.caller_numbers[0])
        async with self.repo.transaction() as conn:
            await conn.execute(
                "INSERT INTO campaigns (id, org_id, name, status, agent_config_enc, from_enc, created_at, updated_at)"
                " VALUES ($1, $2, $3, 'draft', $4, $5, $6, $6)",
                campaign_id, org_id, name, agent_config_enc, from_enc, now,
            )
            await conn.execute(
                "INSERT INTO campaign_dialer (campaign_id, org_id, config, config_enc) VALUES ($1, $2, $3, $4)",
                campaign_id, org_id, {}, self.repo.seal_dialer_config(config.model_dump(mode="json")),
            )
        self._configs[campaign_id] = config
        campaign = await self.get(org_id, campaign_id)
        assert campaign is not None
        return campaign

    async def get(self, org_id: UUID | None, campaign_id: UUID) -> DialCampaign | None:
        """The campaign (``org_id`` None: any organisation's, for the dialer)."""
        async with self.repo.connection() as conn:
            if org_id is None:
                row = await conn.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
            else:
                row = await conn.fetchrow("SELECT * FROM campaigns WHERE id = $1 AND org_id = $2", campaign_id, org_id)
            if row is None:
                return None
            dialer = await conn.fetchrow("SELECT * FROM campaign_dialer WHERE campaign_id = $1", campaign_id)
        return self._campaign(row, dialer)

    async def list(self, org_id: UUID, limit: int = 200) -> list[DialCampaign]:
        async with self.repo.connection() as conn:
            rows = await conn.fetch(
                "SELECT * FROM campaigns WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2", org_id, limit)
        return [self._campaign(r, None) for r in rows]

    async def config(self, campaign_id: UUID) -> CampaignConfig | None:
        """A campaign's dialer configuration (fixed once created, so cached)."""
        if campaign_id not in self._configs:
            row = await self.repo._fetchrow("SELECT config, config_enc FROM campaign_dialer WHERE campaign_id = $1",
                                            campaign_id)
            self._configs[campaign_id] = None if row is None else self._dialer_config(row)
        return self._configs[campaign_id]

    def _dialer_config(self, row: dict[str, Any]) -> CampaignConfig:
        return CampaignConfig.model_validate(self.repo.dialer_config(row), strict=False)

    async def seal_plaintext_rows(self) -> int:
        """Seal the agent_config, caller number and dialer config of campaigns stored before they
        were sealed (migration 0004); returns how many campaigns it sealed. Idempotent."""
        sealed = 0
        async with self.repo.transaction() as conn:
            rows = await conn.fetch(f"SELECT * FROM campaigns WHERE agent_config_enc IS NULL {self.repo.for_update}")
            for row in rows:
                agent_config_enc, from_enc = self.repo.seal_campaign(self.repo.campaign_agent_config(row),
                                                                     self.repo.campaign_from_number(row))
                await conn.execute("UPDATE campaigns SET agent_config_enc = $2, from_enc = $3, agent_config = $4,"
                                   " from_number = NULL WHERE id = $1", row["id"], agent_config_enc, from_enc, {})
                sealed += 1
            dialers = await conn.fetch(
                f"SELECT campaign_id, config, config_enc FROM campaign_dialer WHERE config_enc IS NULL {self.repo.for_update}")
            for row in dialers:
                await conn.execute("UPDATE campaign_dialer SET config_enc = $2, config = $3 WHERE campaign_id = $1",
                                   row["campaign_id"], self.repo.seal_dialer_config(self.repo.dialer_config(row)), {})
        return sealed

    async def transition(self, org_id: UUID, campaign_id: UUID, action: str) -> DialCampaign:
        allowed, target = TRANSITIONS[action]
        now = utcnow()
        async with self.repo.transaction() as conn:
            row = await conn.fetchrow(
                f"SELECT status FROM campaigns WHERE id = $1 AND org_id = $2 {self.lock}", campaign_id, org_id)
            if row is None:
                raise CampaignError("not_found", "no such campaign")
            status = row["status"]
            if status not in allowed:
                raise CampaignError("invalid_state", f"cannot {action} a campaign that is {status}", status)
            dialer = await conn.fetchrow("SELECT campaign_id FROM campaign_dialer WHERE campaign_id = $1", campaign_id)
            if dialer is None:
                raise CampaignError("not_dialable", "this campaign was not created through the campaigns API", status)
            if action == "start":
                count = await conn.fetchrow(
                    "SELECT count(*) AS n FROM campaign_contacts WHERE campaign_id = $1", campaign_id)
                if not count or int(count["n"]) == 0:
                    raise CampaignError("no_contacts", "upload contacts before starting the campaign", status)
                await conn.execute(
                    "UPDATE campaign_contacts SET next_attempt_at = $2 WHERE campaign_id = $1 AND status = 'pending'"
                    " AND next_attempt_at IS NULL", campaign_id, now)
                await conn.execute("UPDATE campaign_dialer SET started_at = COALESCE(started_at, $2)"
                                   " WHERE campaign_id = $1", campaign_id, now)
            if action == "cancel":
                await conn.execute(
                    "UPDATE campaign_contacts SET status = 'cancelled', outcome = COALESCE(outcome, 'cancelled'),"
                    " claim_token = NULL, claimed_by = NULL, lease_until = NULL, finished_at = $2, updated_at = $2"
                    f" WHERE campaign_id = $1 AND status IN ('pending', 'retry_scheduled', 'outside_window', 'claimed')",
                    campaign_id, now)
                await conn.execute("UPDATE campaign_dialer SET finished_at = $2 WHERE campaign_id = $1",
                                   campaign_id, now)
            await conn.execute("UPDATE campaigns SET status = $2, updated_at = $3 WHERE id = $1",
                               campaign_id, target, now)
        campaign = await self.get(org_id, campaign_id)
        assert campaign is not None
        return campaign

    async def maybe_complete(self, campaign_id: UUID) -> bool:
        """Mark a running campaign completed once no contact is left to dial or on a call."""
        now = utcnow()
        async with self.repo.transaction() as conn:
            row = await conn.fetchrow(f"SELECT status, org_id FROM campaigns WHERE id = $1 {self.lock}", campaign_id)
            if row is None or row["status"] != "running":
                return False
            left = await conn.fetchrow(
                f"SELECT count(*) AS n FROM campaign_contacts WHERE campaign_id = $1 AND status IN {NOT_DONE}",
                campaign_id)
            if left and int(left["n"]) > 0:
                return False
            await conn.execute("UPDATE campaigns SET status = 'completed', updated_at = $2 WHERE id = $1",
                               campaign_id, now)
            await conn.execute("UPDATE campaign_dialer SET finished_at = $2 WHERE campaign_id = $1", campaign_id, now)
            org_id = _uuid(row["org_id"])
            if self.repo.change_hook is not None and org_id is not None:  # campaign.completed, in this transaction
                await self.repo.change_hook.campaign_changed(conn, org_id, campaign_id, "completed", completed=True)
        return True

    async def campaigns_to_work(self) -> list[UUID]:
        """Running campaigns, and any campaign with contacts mid-call or whose success is unsettled."""
        rows = await self.repo._fetch(
            "SELECT c.id AS id FROM campaigns c JOIN campaign_dialer d ON d.campaign_id = c.id"
            " WHERE c.status = 'running'"
            " UNION SELECT DISTINCT campaign_id AS id FROM campaign_contacts"
            f" WHERE status IN {ACTIVE}"
            " UNION SELECT DISTINCT campaign_id AS id FROM campaign_contacts WHERE status = 'completed'"
            " AND success IS NULL")
        return [_uuid(r["id"]) for r in rows]  # type: ignore[misc]

    # -- contacts: upload ------------------------------------------------------------------

    def _contact(self, row: dict[str, Any]) -> ContactRow:
        cipher = self.repo._cipher
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
        cipher = self.repo._cipher
        async with self.repo.transaction() as conn:
            row = await conn.fetchrow(
                f"SELECT status FROM campaigns WHERE id = $1 AND org_id = $2 {self.lock}", campaign_id, org_id)
            if row is None:
                raise CampaignError("not_found", "no such campaign")
            if row["status"] in ("completed", "cancelled"):
                raise CampaignError("invalid_state", f"the campaign is {row['status']}", row["status"])
            hashes = [c.phone_hash for c in contacts]
            dnc_rows = await conn.fetch(
                f"SELECT phone_hash FROM dnc_entries WHERE org_id = $1 AND phone_hash IN ({_marks(len(hashes), 2)})",
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
                f"{_rows(len(contacts), width)} ON CONFLICT (campaign_id, phone_hash) DO NOTHING RETURNING phone_hash",
                *args)
        added = {r["phone_hash"] for r in inserted}
        return added, added & dnc

    async def count_contacts(self, campaign_id: UUID) -> int:
        row = await self.repo._fetchrow("SELECT count(*) AS n FROM campaign_contacts WHERE campaign_id = $1",
                                        campaign_id)
        return int(row["n"]) if row else 0

    async def contacts(self, campaign_id: UUID) -> list[ContactRow]:
        rows = await self.repo._fetch("SELECT * FROM campaign_contacts WHERE campaign_id = $1 ORDER BY seq, id",
                                      campaign_id)
        return [self._contact(r) for r in rows]

    async def contact(self, contact_id: UUID) -> ContactRow | None:
        row = await self.repo._fetchrow("SELECT * FROM campaign_contacts WHERE id = $1", contact_id)
        return None if row is None else self._contact(row)

    # -- contacts: the queue ---------------------------------------------------------------

    async def claim_due(self, campaign_id: UUID, worker: str, lease_s: float, now: datetime) -> ContactRow | None:
        """Take the next due contact (``claimed``, a fresh token and lease), or None."""
        rows = await self.repo._fetch(
            "UPDATE campaign_contacts SET status = 'claimed', claim_token = $2, claimed_by = $3, lease_until = $4,"
            " updated_at = $5 WHERE id IN (SELECT id FROM campaign_contacts WHERE campaign_id = $1"
            f" AND status IN {DUE} AND next_attempt_at <= $5 ORDER BY next_attempt_at, seq LIMIT 1"
            f" {self.skip_locked}) RETURNING *",
            campaign_id, uuid4(), worker, now + timedelta(seconds=lease_s), now,
        )
        return self._contact(rows[0]) if rows else None

    async def claim_expired(self, campaign_id: UUID, worker: str, lease_s: float, now: datetime,
                            limit: int = 20) -> list[ContactRow]:
        """Take over ``claimed``/``dialing`` rows whose worker's lease ran out (status unchanged)."""
        rows = await self.repo._fetch(
            "UPDATE campaign_contacts SET claim_token = $2, claimed_by = $3, lease_until = $4, updated_at = $5"
            " WHERE id IN (SELECT id FROM campaign_contacts WHERE campaign_id = $1"
            " AND status IN ('claimed', 'dialing') AND lease_until < $5 ORDER BY lease_until"
            f" LIMIT $6 {self.skip_locked}) RETURNING *",
            campaign_id, uuid4(), worker, now + timedelta(seconds=lease_s), now, limit,
        )
        return [self._contact(r) for r in rows]

    async def release(self, contact: ContactRow, now: datetime, *, status: str | None = None,
                      next_attempt_at: datetime | None = None) -> bool:
        """Give a ``claimed`` contact back undialled (to its due state, or ``status`` at ``next_attempt_at``)."""
        status = status or ("pending" if contact.attempts == 0 else "retry_scheduled")
        n = await self.repo._execute(
            "UPDATE campaign_contacts SET status = $3, next_attempt_at = COALESCE($4, next_attempt_at),"
            " claim_token = NULL, claimed_by = NULL, lease_until = NULL, updated_at = $5"
            " WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
            contact.id, contact.claim_token, status, next_attempt_at, now,
        )
        return n == 1

    async def finish_claimed(self, contact: ContactRow, now: datetime, status: str, outcome: str) -> bool:
        """End a ``claimed`` contact without dialling (``dnc_skipped``, ``cancelled``)."""
        n = await self.repo._execute(
            "UPDATE campaign_contacts SET status = $3, outcome = $4, claim_token = NULL, claimed_by = NULL,"
            " lease_until = NULL, finished_at = $5, updated_at = $5"
            " WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
            contact.id, contact.claim_token, status, outcome, now,
        )
        return n == 1

    async def renew(self, contact: ContactRow, status: str, lease_until: datetime, now: datetime,
                    dial_started_at: datetime | None = None) -> bool:
        """Extend our lease (the fencing check before a dial): False when another worker took the row."""
        n = await self.repo._execute(
            "UPDATE campaign_contacts SET lease_until = $4, updated_at = $5,"
            " dial_started_at = COALESCE(dial_started_at, $6)"
            " WHERE id = $1 AND claim_token = $2 AND status = $3",
            contact.id, contact.claim_token, status, lease_until, now, dial_started_at,
        )
        return n == 1

    async def live_calls(self, campaign_id: UUID) -> int:
        row = await self.repo._fetchrow(
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
        repo = self.repo
        async with repo.transaction() as conn:
            row = await conn.fetchrow(f"SELECT status FROM campaigns WHERE id = $1 {self.lock}", campaign.id)
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
            hashes = [repo.hash_phone(n) for n in numbers]
            if cap is not None:
                rows = await conn.fetch(
                    f"SELECT from_hash, count(*) AS n FROM calls WHERE org_id = $1 AND status IN {LIVE_CALL}"
                    f" AND from_hash IN ({_marks(len(hashes), 2)}) GROUP BY from_hash", campaign.org_id, *hashes)
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
                " dial_started_at = $5, lease_until = $6, last_error = NULL, updated_at = $5"
                " WHERE id = $1 AND claim_token = $2 AND status = 'claimed'",
                contact.id, contact.claim_token, attempt, call_id, now, now + timedelta(seconds=lease_s),
            )
            if updated != 1:
                return Commit("lost")
            call = make_call(call_id, numbers[chosen], attempt)
            call = call.model_copy(update={"to_hash": repo.hash_phone(call.to_number or ""),
                                           "from_hash": repo.hash_phone(call.from_number or "")})
            columns = repo._call_columns(call, [*repo._CALL_PLAIN, *repo._CALL_SEALED, "status_history"])
            await conn.execute(
                f"INSERT INTO calls ({', '.join(columns)}) VALUES ({_marks(len(columns), 1)})", *columns.values())
            await conn.execute("UPDATE campaign_dialer SET next_from_index = $2 WHERE campaign_id = $1",
                               campaign.id, (chosen + 1) % len(numbers))
        return Commit("committed", call=call)

    async def mark_dialled(self, contact_id: UUID, call_id: UUID, now: datetime) -> bool:
        """Telnyx accepted the attempt's dial: ``dialing`` -> ``in_progress`` (whoever recorded it)."""
        n = await self.repo._execute(
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
        await self.repo._execute(
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
        config = await self.config(call.campaign_id)
        if config is None:
            return None
        current = await self.repo._fetchrow("SELECT status FROM campaign_contacts WHERE last_call_id = $1", call.id)
        if current is None or current["status"] not in ("dialing", "in_progress"):
            return None  # settled already (or never a campaign attempt): no write transaction
        async with self.repo.transaction() as conn:
            row = await conn.fetchrow(
                f"SELECT * FROM campaign_contacts WHERE last_call_id = $1 {self.for_update}", call.id)
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
            if self.repo.change_hook is not None:  # campaign.progress, in this transaction
                await self.repo.change_hook.campaign_changed(
                    conn, contact.org_id, contact.campaign_id, campaign["status"] if campaign else "cancelled",
                    completed=False)
        return Applied(contact.id, contact.campaign_id, decision)

    async def settle_success(self, contact_id: UUID, success: bool) -> None:
        await self.repo._execute(
            "UPDATE campaign_contacts SET success = $2 WHERE id = $1 AND status = 'completed' AND success IS NULL",
            contact_id, success)

    # -- maintenance queries ---------------------------------------------------------------

    async def unsettled_calls(self, campaign_id: UUID, limit: int = 100) -> list[UUID]:
        """Calls that ended while their contact still shows them live (a missed or failed hook)."""
        rows = await self.repo._fetch(
            "SELECT cc.last_call_id AS call_id FROM campaign_contacts cc JOIN calls c ON c.id = cc.last_call_id"
            f" WHERE cc.campaign_id = $1 AND cc.status IN ('dialing', 'in_progress') AND c.status IN {TERMINAL_CALL}"
            " LIMIT $2", campaign_id, limit)
        return [_uuid(r["call_id"]) for r in rows]  # type: ignore[misc]

    async def stale_calls(self, campaign_id: UUID, before: datetime, limit: int = 20) -> list[UUID]:
        """Live calls of in-progress contacts that have not changed since ``before`` (lost webhooks?)."""
        rows = await self.repo._fetch(
            "SELECT cc.last_call_id AS call_id FROM campaign_contacts cc JOIN calls c ON c.id = cc.last_call_id"
            f" WHERE cc.campaign_id = $1 AND cc.status = 'in_progress' AND c.status IN {LIVE_CALL}"
            " AND c.updated_at < $2 ORDER BY c.updated_at LIMIT $3", campaign_id, before, limit)
        return [_uuid(r["call_id"]) for r in rows]  # type: ignore[misc]

    async def unscored(self, campaign_id: UUID, finished_before: datetime, limit: int = 100
                       ) -> list[tuple[UUID, UUID | None, datetime | None]]:
        """Answered contacts whose success is still open, finished before ``finished_before``."""
        rows = await self.repo._fetch(
            "SELECT id, last_call_id, finished_at FROM campaign_contacts WHERE campaign_id = $1"
            " AND status = 'completed' AND success IS NULL AND finished_at <= $2 LIMIT $3",
            campaign_id, finished_before, limit)
        return [(_uuid(r["id"]), _uuid(r["last_call_id"]), _time(r["finished_at"])) for r in rows]  # type: ignore[misc]

    # -- figures -----------------------------------------------------------------------------

    async def stats(self, campaign: DialCampaign) -> dict[str, Any]:
        async with self.repo.connection() as conn:
            rows = await conn.fetch(
                "SELECT status, count(*) AS n, COALESCE(SUM(attempts), 0) AS attempts, COALESCE(SUM(cost), 0) AS cost,"
                " SUM(CASE WHEN success THEN 1 ELSE 0 END) AS ok FROM campaign_contacts WHERE campaign_id = $1"
                " GROUP BY status", campaign.id)
            live = await conn.fetchrow(
                f"SELECT count(*) AS n FROM calls WHERE campaign_id = $1 AND status IN {LIVE_CALL}", campaign.id)
            if self.postgres:
                latency = await conn.fetchrow(
                    "SELECT avg((t.latency->>'turn_latency_ms')::float8) AS v FROM turns t JOIN calls c"
                    " ON c.id = t.call_id WHERE c.org_id = $1 AND c.campaign_id = $2"
                    " AND jsonb_typeof(t.latency->'turn_latency_ms') = 'number'", campaign.org_id, campaign.id)
            else:
                latency = await conn.fetchrow(
                    "SELECT avg(json_extract(t.latency, '$.turn_latency_ms')) AS v FROM turns t JOIN calls c"
                    " ON c.id = t.call_id WHERE c.org_id = $1 AND c.campaign_id = $2"
                    " AND json_type(t.latency, '$.turn_latency_ms') IN ('integer', 'real')",
                    campaign.org_id, campaign.id)
        counts = {r["status"]: int(r["n"]) for r in rows}
        cost = sum((Decimal(str(r["cost"])) for r in rows), Decimal(0))
        value = latency["v"] if latency else None
        return {
            "counts": counts,
            "total": sum(counts.values()),
            "calls_placed": sum(int(r["attempts"]) for r in rows),
            "successful": sum(int(r["ok"] or 0) for r in rows if r["status"] == "completed"),
            "cost": cost.quantize(Decimal("0.0001")),
            "live_calls": int(live["n"]) if live else 0,
            "average_turn_latency_ms": None if value is None else round(float(value), 1),
        }


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
