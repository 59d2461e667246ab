"""The campaign aggregate's repository: campaigns (+ campaign_dialer) rows, and their contacts' queue.

One SQL text for PostgreSQL and SQLite, over the store's public pieces: its
:class:`~control_plane.store.Database` (so the dialects stay the store's), its data keys (a
campaign's agent config, caller number and dialer config are sealed like every personal field)
and its :class:`~control_plane.store.CallCodec` (an attempt's call row is written as the calls
repository writes it). Campaigns are created here only, always with their dialer row.
The contacts, the dialer's queue, are :mod:`.queue`'s.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from ..store import Repository, json_column, utcnow
from .models import CampaignConfig
from .queue import ContactQueue
from .rows import (
    ACTIVE,
    LIVE_CALL,
    NOT_DONE,
    TRANSITIONS,
    Applied,
    CampaignError,
    Commit,
    ContactRow,
    DialCampaign,
    PreparedContact,
    as_time,
    as_uuid,
)

__all__ = ["Applied", "CampaignError", "CampaignStore", "Commit", "ContactQueue", "ContactRow", "DialCampaign",
           "PreparedContact"]


class CampaignStore:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.db = repo.db
        self.row_lock = self.db.for_no_key_update  # contacts reference the campaign row: the weaker lock
        self.postgres = repo.db.dialect == "postgres"
        self._cipher = repo.keys.cipher
        self._configs: dict[UUID, CampaignConfig | None] = {}
        self.queue = queue = ContactQueue(repo.db, repo.keys, repo.calls.codec, self.config)
        # The queue's operations under the names the dialer and the importer use.
        self.import_batch = queue.import_batch
        self.count_contacts = queue.count_contacts
        self.contacts = queue.contacts
        self.contact = queue.contact
        self.claim_due = queue.claim_due
        self.claim_expired = queue.claim_expired
        self.release = queue.release
        self.finish_claimed = queue.finish_claimed
        self.renew = queue.renew
        self.shared_now = queue.shared_now
        self.live_calls = queue.live_calls
        self.commit_dial = queue.commit_dial
        self.mark_dialled = queue.mark_dialled
        self.dial_later = queue.dial_later
        self.apply_outcome = queue.apply_outcome
        self.settle_success = queue.settle_success
        self.unsettled_calls = queue.unsettled_calls
        self.stale_calls = queue.stale_calls
        self.unscored = queue.unscored
        self.has_unfinished = queue.has_unfinished

    # A campaign's agent_config, caller number and dialer config are sealed (migration 0004); the
    # plaintext columns keep '{}' / NULL. Rows written before 0004 read from the plaintext columns
    # until seal_plaintext_rows() seals them.

    def _seal_campaign(self, agent_config: dict[str, Any], from_number: str | None) -> tuple[str, str | None]:
        """(agent_config_enc, from_enc) for a campaigns row."""
        return (self._cipher.seal_json(agent_config, "campaigns.agent_config"),  # type: ignore[return-value]
                self._cipher.seal(from_number, "campaigns.from"))

    def _agent_config(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if row["agent_config_enc"] is not None:
            return self._cipher.open_json(row["agent_config_enc"], "campaigns.agent_config") or {}
        return json_column(row["agent_config"]) or {}

    def _from_number(self, row: Mapping[str, Any]) -> str | None:
        if row["from_enc"] is not None:
            return self._cipher.open(row["from_enc"], "campaigns.from")
        return row["from_number"]  # type: ignore[no-any-return]

    def _seal_dialer_config(self, config: dict[str, Any]) -> str:
        return self._cipher.seal_json(config, "campaign_dialer.config")  # type: ignore[return-value]

    def _dialer_config_json(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A campaign_dialer row's config (its caller numbers among it), as JSON."""
        if row["config_enc"] is not None:
            return self._cipher.open_json(row["config_enc"], "campaign_dialer.config")  # type: ignore[no-any-return]
        return json_column(row["config"])  # type: ignore[no-any-return]

    # -- campaigns ---------------------------------------------------------------------

    def _campaign(self, row: dict[str, Any], dialer: dict[str, Any] | None) -> DialCampaign:
        config = self._configs.get(as_uuid(row["id"]))  # type: ignore[arg-type]
        if config is None and dialer is not None:
            config = self._dialer_config(dialer)
            self._configs[as_uuid(row["id"])] = config  # type: ignore[index]
        started = dialer.get("started_at") if dialer else None
        finished = dialer.get("finished_at") if dialer else None
        return DialCampaign(
            id=as_uuid(row["id"]), org_id=as_uuid(row["org_id"]), name=row["name"], status=row["status"],  # type: ignore[arg-type]
            agent_config=self._agent_config(row), config=config,
            created_at=as_time(row["created_at"]), updated_at=as_time(row["updated_at"]),  # type: ignore[arg-type]
            started_at=as_time(started), finished_at=as_time(finished), from_number=self._from_number(row),
        )

    async def create_campaign(self, org_id: UUID, name: str, agent_config: dict[str, Any],
                              config: CampaignConfig) -> DialCampaign:
        now = utcnow()
        campaign_id = uuid4()
        agent_config_enc, from_enc = self._seal_campaign(agent_config, config.caller_numbers[0])
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO campaigns (id, org_id, name, status, agent_config_enc, from_enc, created_at, updated_at)"
                " VALUES ($1, $2, $3, 'draft', $4, $5, $6, $6)",
                campaign_id, org_id, name, agent_config_enc, from_enc, now,
            )
            await conn.execute(
                "INSERT INTO campaign_dialer (campaign_id, org_id, config, config_enc) VALUES ($1, $2, $3, $4)",
                campaign_id, org_id, {}, self._seal_dialer_config(config.model_dump(mode="json")),
            )
        self._configs[campaign_id] = config
        campaign = await self.get(org_id, campaign_id)
        assert campaign is not None
        return campaign

    async def get(self, org_id: UUID | None, campaign_id: UUID) -> DialCampaign | None:
        """The campaign (``org_id`` None: any organisation's, for the dialer)."""
        async with self.db.connection() as conn:
            if org_id is None:
                row = await conn.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
            else:
                row = await conn.fetchrow("SELECT * FROM campaigns WHERE id = $1 AND org_id = $2", campaign_id, org_id)
            if row is None:
                return None
            dialer = await conn.fetchrow("SELECT * FROM campaign_dialer WHERE campaign_id = $1", campaign_id)
        return self._campaign(row, dialer)

    async def list(self, org_id: UUID, limit: int = 200) -> list[DialCampaign]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT * FROM campaigns WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2", org_id, limit)
        return [self._campaign(r, None) for r in rows]

    async def config(self, campaign_id: UUID) -> CampaignConfig | None:
        """A campaign's dialer configuration (fixed once created, so cached)."""
        if campaign_id not in self._configs:
            row = await self.db.fetchrow("SELECT config, config_enc FROM campaign_dialer WHERE campaign_id = $1",
                                            campaign_id)
            self._configs[campaign_id] = None if row is None else self._dialer_config(row)
        return self._configs[campaign_id]

    def _dialer_config(self, row: dict[str, Any]) -> CampaignConfig:
        return CampaignConfig.model_validate(self._dialer_config_json(row), strict=False)

    async def seal_plaintext_rows(self) -> int:
        """Seal the agent_config, caller number and dialer config of campaigns stored before they
        were sealed (migration 0004); returns how many campaigns it sealed. Idempotent."""
        sealed = 0
        async with self.db.transaction() as conn:
            rows = await conn.fetch(f"SELECT * FROM campaigns WHERE agent_config_enc IS NULL {self.db.for_update}")
            for row in rows:
                agent_config_enc, from_enc = self._seal_campaign(self._agent_config(row),
                                                                     self._from_number(row))
                await conn.execute("UPDATE campaigns SET agent_config_enc = $2, from_enc = $3, agent_config = $4,"
                                   " from_number = NULL WHERE id = $1", row["id"], agent_config_enc, from_enc, {})
                sealed += 1
            dialers = await conn.fetch(
                "SELECT campaign_id, config, config_enc FROM campaign_dialer WHERE config_enc IS NULL"
                f" {self.db.for_update}")
            for row in dialers:
                await conn.execute("UPDATE campaign_dialer SET config_enc = $2, config = $3 WHERE campaign_id = $1",
                                   row["campaign_id"], self._seal_dialer_config(self._dialer_config_json(row)), {})
        return sealed

    async def transition(self, org_id: UUID, campaign_id: UUID, action: str) -> DialCampaign:
        allowed, target = TRANSITIONS[action]
        now = utcnow()
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                f"SELECT status FROM campaigns WHERE id = $1 AND org_id = $2 {self.row_lock}", campaign_id, org_id)
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
                    " WHERE campaign_id = $1 AND status IN ('pending', 'retry_scheduled', 'outside_window', 'claimed')",
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
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(f"SELECT status, org_id FROM campaigns WHERE id = $1 {self.row_lock}",
                                      campaign_id)
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
            listener = self.repo.hooks.listener
            if listener is not None:  # campaign.completed, in this transaction
                org_id = row["org_id"] if isinstance(row["org_id"], UUID) else UUID(str(row["org_id"]))
                await listener.campaign_changed(conn, org_id, campaign_id, "completed", completed=True)
        return True

    async def campaigns_to_work(self) -> builtins.list[UUID]:  # (list: a method of this class)
        """Running campaigns, and any campaign with contacts mid-call or whose success is unsettled."""
        rows = await self.db.fetch(
            "SELECT c.id AS id FROM campaigns c JOIN campaign_dialer d ON d.campaign_id = c.id"
            " WHERE c.status = 'running'"
            " UNION SELECT DISTINCT campaign_id AS id FROM campaign_contacts"
            f" WHERE status IN {ACTIVE}"
            " UNION SELECT DISTINCT campaign_id AS id FROM campaign_contacts WHERE status = 'completed'"
            " AND success IS NULL")
        return [as_uuid(r["id"]) for r in rows]  # type: ignore[misc]

    # -- figures -----------------------------------------------------------------------------

    async def stats(self, campaign: DialCampaign) -> dict[str, Any]:
        async with self.db.connection() as conn:
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
