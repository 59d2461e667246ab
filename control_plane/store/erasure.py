"""GDPR erasure: every trace of one phone number removed from an organisation's records at once.

It spans the calls, turns, stored webhooks and campaign contacts, in one transaction, so it is
its own aggregate rather than a method of each: what survives is listed in :meth:`erase_phone`.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from ..crypto import DataKeys
from .db import Conflict, Conn, Database, json_column
from .hooks import ChangeHooks
from .records import TERMINAL_STATUSES, Erasure, ErasureCounts, utcnow


class ErasureResult(ErasureCounts):
    call_ids: tuple[UUID, ...] = ()
    call_control_ids: tuple[str, ...] = ()
    recording_ids: tuple[str, ...] = ()


class OrganisationBusy(Conflict):
    """The organisation has calls up or a campaign running: erasing it now would pull its rows from
    under them (hang up / pause first)."""


# What an organisation's erasure counts in its receipt: every table keyed by the organisation
# (the rest go with these by cascade: a call's turns and usage, a campaign's dialer row...).
ORGANISATION_TABLES = ("calls", "turns", "call_events", "call_usage", "campaigns", "campaign_contacts",
                       "phone_numbers", "api_keys", "dnc_entries", "erasures", "webhook_endpoints",
                       "webhook_messages")

Eraser = Callable[[Conn, UUID], Awaitable[Mapping[str, int]]]
"""Part of an organisation kept outside this package (its knowledge bases): erased in the same
transaction, returning what it removed by name."""


@dataclass(frozen=True, slots=True)
class OrganisationErasureResult:
    counts: dict[str, int]
    call_control_ids: tuple[str, ...]
    recording_ids: tuple[str, ...]


# Fields of an event payload kept after an erasure: identifiers and outcomes, nothing a
# person said or can be found by. Everything else is dropped; from/to become the hash.
ERASURE_KEPT_PAYLOAD_FIELDS = frozenset({
    "call_control_id", "call_leg_id", "call_session_id", "connection_id", "direction", "state",
    "hangup_cause", "hangup_source", "sip_hangup_cause", "status", "result", "start_time", "end_time",
    "stream_id", "stream_type", "failure_reason", "recording_id", "channels", "format", "call_quality_stats",
    "billed_duration_secs", "total_cost", "cost_parts", "occurred_at",
})


def redact_payload(payload: dict[str, Any], needles: Iterable[str], replacement: str) -> dict[str, Any]:
    """An event payload after an erasure: allow-listed fields, with the number replaced."""
    needles = [n for n in needles if n]
    kept = {k: _scrub_json(v, needles, replacement) for k, v in payload.items() if k in ERASURE_KEPT_PAYLOAD_FIELDS}
    for side in ("from", "to"):
        if side in payload:
            matched = _scrub_json(payload[side], needles, replacement) != payload[side]
            kept[side] = replacement if matched else "erased"
    kept["erased"] = True
    return kept


def _scrub_json(value: Any, needles: Sequence[str], replacement: str) -> Any:
    if isinstance(value, str):
        for needle in needles:
            value = value.replace(needle, replacement)
        return value
    if isinstance(value, dict):
        return {k: _scrub_json(v, needles, replacement) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, needles, replacement) for v in value]
    return value


def needles_for(e164: str) -> list[str]:
    """The forms a number takes in free text: ``+14155550123`` and ``14155550123``."""
    return [e164, e164.lstrip("+")]


class ErasureRepository(abc.ABC):
    @abc.abstractmethod
    async def erase_phone(self, org_id: UUID, phone: str) -> ErasureResult: ...
    @abc.abstractmethod
    async def list_erasures(self, org_id: UUID) -> list[Erasure]: ...
    @abc.abstractmethod
    async def erase_organisation(self, org_id: UUID, also: Sequence[Eraser] = (), *,
                                 force: bool = False) -> OrganisationErasureResult | None: ...


class SqlErasureRepository(ErasureRepository):
    def __init__(self, db: Database, keys: DataKeys, hooks: ChangeHooks | None = None) -> None:
        self.db = db
        self._cipher = keys.cipher
        self._hasher = keys.hasher
        self.hooks = hooks or ChangeHooks()

    async def erase_phone(self, org_id: UUID, phone: str) -> ErasureResult:
        """Remove every trace of ``phone`` from the organisation's records, in one transaction.

        Calls keep their hash (``to_hash``/``from_hash``), status and timings; the number,
        transcripts, summary, outcome, recording URL and the call's agent config go.
        Stored webhooks about those calls, or naming the number, keep allow-listed
        identifiers only. Campaign contacts keep the hash (so the number is not re-added).
        DNC entries are hashes already and stay: erasure must not make a number callable.
        """
        digest = self._hasher.phone(phone)
        needles = needles_for(phone)
        now = utcnow()
        counts: dict[str, int] = dict.fromkeys(ErasureCounts.model_fields, 0)
        call_ids: list[UUID] = []
        control_ids: list[str] = []
        recording_ids: list[str] = []
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                f"SELECT * FROM calls WHERE org_id = $1 AND (to_hash = $2 OR from_hash = $2) {self.db.for_update}",
                org_id, digest,
            )
            for row in rows:
                call_ids.append(row["id"] if isinstance(row["id"], UUID) else UUID(row["id"]))
                if row["call_control_id"]:
                    control_ids.append(row["call_control_id"])
                if row["recording_id"]:
                    recording_ids.append(row["recording_id"])
                counts["calls"] += 1
                counts["summaries"] += row["summary_enc"] is not None
                counts["outcomes"] += row["outcome_enc"] is not None
                counts["recordings"] += row["recording_url_enc"] is not None
                counts["agent_configs"] += row["agent_config_enc"] is not None
                error = json_column(row["error"]) if row["error"] is not None else None
                await conn.execute(
                    "UPDATE calls SET to_enc = CASE WHEN to_hash = $2 THEN NULL ELSE to_enc END,"
                    " from_enc = CASE WHEN from_hash = $2 THEN NULL ELSE from_enc END,"
                    " agent_config_enc = NULL, summary_enc = NULL, outcome_enc = NULL, recording_url_enc = NULL,"
                    " idempotency_key_hash = NULL, error = $3, erased_at = $4, updated_at = $4 WHERE id = $1",
                    row["id"], digest, None if error is None else _scrub_json(error, needles, digest), now,
                )
                counts["transcripts"] += await conn.execute(
                    "UPDATE turns SET caller_text_enc = NULL, agent_text_enc = NULL WHERE call_id = $1"
                    " AND (caller_text_enc IS NOT NULL OR agent_text_enc IS NOT NULL)",
                    row["id"],
                )
            events = await conn.fetch(
                "SELECT event_id, payload_enc, last_error FROM call_events WHERE (org_id = $1 OR org_id IS NULL)"
                " AND (from_hash = $2 OR to_hash = $2)",
                org_id, digest,
            )
            seen = {e["event_id"] for e in events}
            for call_id in call_ids:
                for e in await conn.fetch(
                        "SELECT event_id, payload_enc, last_error FROM call_events WHERE call_id = $1", call_id):
                    if e["event_id"] not in seen:
                        seen.add(e["event_id"])
                        events.append(e)
            for e in events:
                payload = self._cipher.open_json(e["payload_enc"], "call_events.payload")
                if isinstance(payload, dict) and payload.get("erased"):
                    continue
                redacted = redact_payload(payload if isinstance(payload, dict) else {}, needles, digest)
                await conn.execute(
                    "UPDATE call_events SET payload_enc = $2, last_error = $3 WHERE event_id = $1", e["event_id"],
                    self._cipher.seal_json(redacted, "call_events.payload"),
                    None if e["last_error"] is None else _scrub_json(e["last_error"], needles, digest),
                )
                counts["call_events"] += 1
            counts["campaign_contacts"] = await conn.execute(
                "UPDATE campaign_contacts SET phone_enc = NULL, data_enc = NULL, status = 'erased', updated_at = $3"
                " WHERE org_id = $1 AND phone_hash = $2 AND (phone_enc IS NOT NULL OR data_enc IS NOT NULL)",
                org_id, digest, now,
            )
            if self.hooks.listener is not None:  # e.g. the webhook outbox's events of these calls
                await self.hooks.listener.erased(conn, org_id, call_ids)
            await conn.execute(
                "INSERT INTO erasures (id, org_id, phone_hash, counts, created_at) VALUES ($1, $2, $3, $4, $5)",
                uuid4(), org_id, digest, counts, now,
            )
        return ErasureResult(**counts, call_ids=tuple(call_ids), call_control_ids=tuple(control_ids),
                             recording_ids=tuple(recording_ids))

    async def list_erasures(self, org_id: UUID) -> list[Erasure]:
        rows = await self.db.fetch("SELECT * FROM erasures WHERE org_id = $1 ORDER BY created_at", org_id)
        return [Erasure.model_validate({**r, "counts": json_column(r["counts"])}) for r in rows]

    async def erase_organisation(self, org_id: UUID, also: Sequence[Eraser] = (), *,
                                 force: bool = False) -> OrganisationErasureResult | None:
        """Delete the organisation and everything it owns, in one transaction (``None``: no such one).

        Every table references ``organisations`` with ``ON DELETE CASCADE``, except the Telnyx
        webhooks stored before their call was known to be the organisation's (``org_id`` NULL,
        ``call_id`` set), deleted here by their call. ``also`` erases the parts kept outside the
        store package (the knowledge bases) inside the same transaction. Refused with
        :class:`OrganisationBusy` while a call is up or a campaign is running, unless ``force``
        (a call stuck in a live state after a crash). Nothing is kept: there is no organisation
        left to keep a receipt under; the caller gets the counts.
        """
        live = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
        async with self.db.transaction() as conn:
            if await conn.fetchrow(f"SELECT id FROM organisations WHERE id = $1 {self.db.for_update}",
                                   org_id) is None:
                return None
            if not force:
                calls = await conn.fetchrow(
                    f"SELECT count(*) AS n FROM calls WHERE org_id = $1 AND status NOT IN ({live})", org_id)
                campaigns = await conn.fetchrow(
                    "SELECT count(*) AS n FROM campaigns WHERE org_id = $1 AND status = 'running'", org_id)
                if (calls and int(calls["n"])) or (campaigns and int(campaigns["n"])):
                    raise OrganisationBusy("the organisation has calls in progress or a campaign running:"
                                           " hang them up and pause or cancel its campaigns first")
            counts: dict[str, int] = {}
            for table in ORGANISATION_TABLES:
                row = await conn.fetchrow(f"SELECT count(*) AS n FROM {table} WHERE org_id = $1", org_id)
                counts[table] = int(row["n"]) if row else 0
            control_ids: list[str] = []
            recording_ids: list[str] = []
            for row in await conn.fetch("SELECT call_control_id, recording_id FROM calls WHERE org_id = $1",
                                        org_id):
                if row["call_control_id"]:
                    control_ids.append(row["call_control_id"])
                if row["recording_id"]:
                    recording_ids.append(row["recording_id"])
            for eraser in also:
                counts.update(await eraser(conn, org_id))
            counts["call_events"] += await conn.execute(
                "DELETE FROM call_events WHERE org_id IS NULL AND call_id IN (SELECT id FROM calls WHERE org_id = $1)",
                org_id)
            await conn.execute("DELETE FROM organisations WHERE id = $1", org_id)
        return OrganisationErasureResult(counts=counts, call_control_ids=tuple(control_ids),
                                         recording_ids=tuple(recording_ids))
