"""The repository: one typed async interface, two SQL backends sharing one implementation.

:class:`Repository` is what the rest of the control plane uses. :class:`SqlRepository`
implements it over a tiny driver protocol (``fetch`` / ``fetchrow`` / ``execute`` with
``$n`` placeholders); :mod:`.postgres` and :mod:`.sqlite` supply connections and the
two places the dialects differ (row locks). Sealing and hashing of personal data happen
here, so callers handle plaintext records and nothing personal reaches a query in clear.

Every method a caller reaches through the API takes the organisation id and filters on
it: another organisation's row is simply not found.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

import orjson

from ..crypto import DataKeys
from .records import (
    ApiKey,
    Call,
    CallPage,
    Campaign,
    CampaignContact,
    DncEntry,
    Erasure,
    ErasureCounts,
    EventSummary,
    Organisation,
    PhoneNumber,
    StatusChange,
    StoredEvent,
    Turn,
    utcnow,
)


class StoreError(RuntimeError):
    """The store is unreachable, misconfigured or not migrated."""


class Conflict(StoreError):
    """A unique constraint refused the write (the thing already exists)."""


class Conn(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...
    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None: ...
    async def execute(self, sql: str, *args: Any) -> int: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


CallMutation = Callable[[Call], "Call | None"]


class ErasureResult(ErasureCounts):
    call_ids: tuple[UUID, ...] = ()
    call_control_ids: tuple[str, ...] = ()
    recording_ids: tuple[str, ...] = ()


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


def _json(value: Any) -> Any:
    """JSON columns: dicts from asyncpg's codec, text from SQLite."""
    if isinstance(value, (str, bytes)):
        return orjson.loads(value)
    return value


def _datetime(value: Any) -> datetime:
    """Timestamp columns: datetimes from asyncpg, ISO text from SQLite."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def needles_for(e164: str) -> list[str]:
    """The forms a number takes in free text: ``+14155550123`` and ``14155550123``."""
    return [e164, e164.lstrip("+")]


class Repository(abc.ABC):
    """Typed access to the control plane's records. Implementations: PostgreSQL, SQLite."""

    dialect: str

    # -- lifecycle -------------------------------------------------------------------
    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def hash_phone(self, e164: str) -> str: ...

    @abc.abstractmethod
    def hash_request(self, canonical: bytes) -> str: ...

    @abc.abstractmethod
    def hash_idempotency_key(self, key: str) -> str: ...

    # -- organisations and keys --------------------------------------------------------
    @abc.abstractmethod
    async def create_organisation(self, name: str) -> Organisation: ...
    @abc.abstractmethod
    async def get_organisation(self, org_id: UUID) -> Organisation | None: ...
    @abc.abstractmethod
    async def list_organisations(self) -> list[Organisation]: ...
    @abc.abstractmethod
    async def update_organisation_settings(self, org_id: UUID, changes: dict[str, Any]) -> Organisation | None:
        """Merge ``changes`` into the organisation's settings (a ``None`` value removes a key)."""
    @abc.abstractmethod
    async def insert_api_key(self, key: ApiKey) -> ApiKey: ...
    @abc.abstractmethod
    async def find_api_key(self, prefix: str) -> ApiKey | None: ...
    @abc.abstractmethod
    async def list_api_keys(self, org_id: UUID) -> list[ApiKey]: ...
    @abc.abstractmethod
    async def revoke_api_key(self, org_id: UUID, key_id: UUID, *, keep_one_active: bool = False) -> ApiKey | None: ...

    # -- phone numbers and campaigns ---------------------------------------------------
    @abc.abstractmethod
    async def add_phone_number(self, org_id: UUID, number: str, agent_config: dict[str, Any]) -> PhoneNumber: ...
    @abc.abstractmethod
    async def find_phone_number(self, number: str) -> PhoneNumber | None: ...
    @abc.abstractmethod
    async def list_phone_numbers(self, org_id: UUID) -> list[PhoneNumber]: ...
    @abc.abstractmethod
    async def remove_phone_number(self, org_id: UUID, number: str) -> bool: ...
    @abc.abstractmethod
    async def update_phone_number(self, org_id: UUID, number: str, agent_config: dict[str, Any]) -> PhoneNumber | None:
        """Replace the agent config of one of the organisation's numbers; None if it has no such number."""
    @abc.abstractmethod
    async def create_campaign(self, org_id: UUID, name: str, agent_config: dict[str, Any] | None = None,
                              from_number: str | None = None) -> Campaign: ...
    @abc.abstractmethod
    async def get_campaign(self, org_id: UUID, campaign_id: UUID) -> Campaign | None: ...
    @abc.abstractmethod
    async def add_campaign_contact(self, org_id: UUID, campaign_id: UUID, phone: str,
                                   data: dict[str, Any] | None = None) -> CampaignContact: ...
    @abc.abstractmethod
    async def list_campaign_contacts(self, org_id: UUID, campaign_id: UUID) -> list[CampaignContact]: ...

    # -- calls -------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_call(self, call: Call) -> Call: ...
    @abc.abstractmethod
    async def get_call(self, org_id: UUID, call_id: UUID) -> Call | None: ...
    @abc.abstractmethod
    async def get_call_by_idempotency_key(self, org_id: UUID, key_hash: str) -> Call | None:
        """The call started with the ``Idempotency-Key`` whose :meth:`hash_idempotency_key` this is."""
    @abc.abstractmethod
    async def get_call_unscoped(self, call_id: UUID) -> Call | None:
        """For webhooks, which carry no organisation: the call a ``client_state`` names."""
    @abc.abstractmethod
    async def find_call_by_control_id(self, call_control_id: str) -> Call | None: ...
    @abc.abstractmethod
    async def find_call_by_leg_id(self, call_leg_id: str) -> Call | None:
        """The call whose Telnyx leg this is: for events without a call_control_id
        (``call.recording.saved`` in Telnyx's SDK model). Every organisation's."""
    @abc.abstractmethod
    async def list_unconfirmed_dials(self, before: datetime, *, limit: int = 100) -> list[Call]:
        """Queued calls with no Telnyx call id, created before ``before``: every organisation's."""
    @abc.abstractmethod
    async def list_answered_calls(self, answered_before: datetime, *, limit: int = 200) -> list[Call]:
        """Calls still ``answered`` (live at Telnyx as far as we know), answered before ``answered_before``,
        oldest first: every organisation's (the stream recovery sweep)."""
    @abc.abstractmethod
    async def update_call(self, call_id: UUID, mutate: CallMutation) -> Call | None:
        """Read the call under a row lock, apply ``mutate`` (pure; ``None`` = no change), write the difference."""
    @abc.abstractmethod
    async def list_calls(self, org_id: UUID, *, status: str | None = None, campaign_id: UUID | None = None,
                         since: datetime | None = None, until: datetime | None = None, limit: int = 50,
                         after: tuple[datetime, UUID] | None = None, direction: str | None = None) -> CallPage: ...
    @abc.abstractmethod
    async def list_live_calls(self, org_id: UUID, *, limit: int = 200) -> list[Call]:
        """The organisation's calls not yet ended (queued, initiated, answered), newest first."""

    # -- turns -------------------------------------------------------------------------
    @abc.abstractmethod
    async def upsert_turn(self, turn: Turn) -> Turn: ...
    @abc.abstractmethod
    async def list_turns(self, call_id: UUID) -> list[Turn]: ...
    @abc.abstractmethod
    async def last_turn_latencies(self, call_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        """Each call's latest turn's latency figures (calls without turns left out), in one query."""
    @abc.abstractmethod
    async def list_turn_latencies(self, org_id: UUID, *, since: datetime, calls_since: datetime,
                                  limit: int) -> list[tuple[datetime, dict[str, Any]]]:
        """(created_at, latency figures) of the organisation's turns since ``since``, oldest first, of
        calls created since ``calls_since`` (the calls index bounds the scan; no transcript is opened)."""

    # -- webhook events ----------------------------------------------------------------
    @abc.abstractmethod
    async def insert_event(self, event: StoredEvent) -> bool:
        """Store a received webhook; ``False`` when its event id is already stored."""
    @abc.abstractmethod
    async def get_event(self, event_id: str) -> StoredEvent | None: ...
    @abc.abstractmethod
    async def claim_events(self, *, limit: int, lease_s: float, now: datetime | None = None) -> list[StoredEvent]: ...
    @abc.abstractmethod
    async def complete_event(self, event_id: str, *, org_id: UUID | None, call_id: UUID | None,
                             error: str | None = None) -> None: ...
    @abc.abstractmethod
    async def retry_event(self, event_id: str, *, error: str, retry_in_s: float, lease_s: float) -> None: ...
    @abc.abstractmethod
    async def list_call_events(self, call_id: UUID) -> list[EventSummary]: ...
    @abc.abstractmethod
    async def count_unprocessed_events(self) -> int: ...

    # -- do-not-call -------------------------------------------------------------------
    @abc.abstractmethod
    async def add_dnc(self, org_id: UUID, phone: str, *, reason: str | None = None, source: str = "api") -> bool: ...
    @abc.abstractmethod
    async def add_dnc_many(self, org_id: UUID, entries: Sequence[tuple[str, str | None]], *, source: str) -> int: ...
    @abc.abstractmethod
    async def remove_dnc(self, org_id: UUID, phone: str) -> bool: ...
    @abc.abstractmethod
    async def get_dnc(self, org_id: UUID, phone: str) -> DncEntry | None: ...

    # -- erasure -----------------------------------------------------------------------
    @abc.abstractmethod
    async def erase_phone(self, org_id: UUID, phone: str) -> ErasureResult: ...
    @abc.abstractmethod
    async def list_erasures(self, org_id: UUID) -> list[Erasure]: ...


class SqlRepository(Repository):
    """The shared implementation. Subclasses provide :meth:`connection` and :meth:`transaction`."""

    for_update = ""  # "FOR UPDATE" where the dialect has row locks
    skip_locked = ""

    def __init__(self, keys: DataKeys) -> None:
        self.keys = keys
        self._cipher = keys.cipher
        self._hasher = keys.hasher

    @abc.abstractmethod
    def connection(self) -> AbstractAsyncContextManager[Conn]: ...

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Conn]: ...

    def hash_phone(self, e164: str) -> str:
        return self._hasher.phone(e164)

    def hash_request(self, canonical: bytes) -> str:
        return self._hasher.request(canonical)

    def hash_idempotency_key(self, key: str) -> str:
        return self._hasher.idempotency_key(key)

    async def _fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self.connection() as conn:
            return await conn.fetch(sql, *args)

    async def _fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        async with self.connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> int:
        async with self.connection() as conn:
            return await conn.execute(sql, *args)

    # -- organisations and keys --------------------------------------------------------

    @staticmethod
    def _org(row: dict[str, Any]) -> Organisation:
        return Organisation(id=row["id"], name=row["name"], created_at=row["created_at"],
                            settings=_json(row["settings"]))

    async def create_organisation(self, name: str) -> Organisation:
        org = Organisation(id=uuid4(), name=name, created_at=utcnow())
        await self._execute(
            "INSERT INTO organisations (id, name, settings, created_at) VALUES ($1, $2, $3, $4)",
            org.id, org.name, org.settings, org.created_at,
        )
        return org

    async def get_organisation(self, org_id: UUID) -> Organisation | None:
        row = await self._fetchrow("SELECT * FROM organisations WHERE id = $1", org_id)
        return None if row is None else self._org(row)

    async def list_organisations(self) -> list[Organisation]:
        rows = await self._fetch("SELECT * FROM organisations ORDER BY created_at, id")
        return [self._org(row) for row in rows]

    async def update_organisation_settings(self, org_id: UUID, changes: dict[str, Any]) -> Organisation | None:
        async with self.transaction() as conn:
            row = await conn.fetchrow(f"SELECT * FROM organisations WHERE id = $1 {self.for_update}", org_id)
            if row is None:
                return None
            org = self._org(row)
            merged = {k: v for k, v in {**org.settings, **changes}.items() if v is not None}
            await conn.execute("UPDATE organisations SET settings = $2 WHERE id = $1", org_id, merged)
            return org.model_copy(update={"settings": merged})

    @staticmethod
    def _key(row: dict[str, Any]) -> ApiKey:
        return ApiKey.model_validate(row)

    async def insert_api_key(self, key: ApiKey) -> ApiKey:
        try:
            await self._execute(
                "INSERT INTO api_keys (id, org_id, name, prefix, key_hash, created_at, revoked_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                key.id, key.org_id, key.name, key.prefix, key.key_hash, key.created_at, key.revoked_at,
            )
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict("API key prefix already exists") from None
            raise
        return key

    async def find_api_key(self, prefix: str) -> ApiKey | None:
        row = await self._fetchrow("SELECT * FROM api_keys WHERE prefix = $1", prefix)
        return None if row is None else self._key(row)

    async def list_api_keys(self, org_id: UUID) -> list[ApiKey]:
        rows = await self._fetch("SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created_at, id", org_id)
        return [self._key(r) for r in rows]

    async def revoke_api_key(self, org_id: UUID, key_id: UUID, *, keep_one_active: bool = False) -> ApiKey | None:
        async with self.transaction() as conn:
            row = await conn.fetchrow(f"SELECT * FROM api_keys WHERE id = $1 AND org_id = $2 {self.for_update}",
                                      key_id, org_id)
            if row is None:
                return None
            key = self._key(row)
            if key.revoked_at is not None:
                return key
            if keep_one_active:
                others = await conn.fetchrow(
                    "SELECT count(*) AS n FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL AND id <> $2",
                    org_id, key_id,
                )
                if not others or int(others["n"]) == 0:
                    raise Conflict("this is the organisation's last active API key")
            now = utcnow()
            await conn.execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1", key_id, now)
            return key.model_copy(update={"revoked_at": now})

    # -- phone numbers and campaigns ---------------------------------------------------

    @staticmethod
    def _number(row: dict[str, Any]) -> PhoneNumber:
        return PhoneNumber(id=row["id"], org_id=row["org_id"], number=row["number"],
                           agent_config=_json(row["agent_config"]), created_at=row["created_at"])

    async def add_phone_number(self, org_id: UUID, number: str, agent_config: dict[str, Any]) -> PhoneNumber:
        record = PhoneNumber(id=uuid4(), org_id=org_id, number=number, agent_config=agent_config, created_at=utcnow())
        try:
            await self._execute(
                "INSERT INTO phone_numbers (id, org_id, number, agent_config, created_at) VALUES ($1, $2, $3, $4, $5)",
                record.id, org_id, number, agent_config, record.created_at,
            )
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict("that number is already registered") from None
            raise
        return record

    async def find_phone_number(self, number: str) -> PhoneNumber | None:
        row = await self._fetchrow("SELECT * FROM phone_numbers WHERE number = $1", number)
        return None if row is None else self._number(row)

    async def list_phone_numbers(self, org_id: UUID) -> list[PhoneNumber]:
        rows = await self._fetch("SELECT * FROM phone_numbers WHERE org_id = $1 ORDER BY created_at", org_id)
        return [self._number(r) for r in rows]

    async def update_phone_number(self, org_id: UUID, number: str, agent_config: dict[str, Any]) -> PhoneNumber | None:
        n = await self._execute("UPDATE phone_numbers SET agent_config = $3 WHERE org_id = $1 AND number = $2",
                                org_id, number, agent_config)
        if not n:
            return None
        row = await self._fetchrow("SELECT * FROM phone_numbers WHERE org_id = $1 AND number = $2", org_id, number)
        return None if row is None else self._number(row)

    async def remove_phone_number(self, org_id: UUID, number: str) -> bool:
        n = await self._execute("DELETE FROM phone_numbers WHERE org_id = $1 AND number = $2", org_id, number)
        return n > 0

    # A campaign's agent_config, caller number and dialer config are sealed (migration 0004); the
    # plaintext columns keep '{}' / NULL. Rows written before 0004 read from the plaintext columns
    # until CampaignStore.seal_plaintext_rows() seals them.

    def seal_campaign(self, agent_config: dict[str, Any], from_number: str | None) -> tuple[str, str | None]:
        """(agent_config_enc, from_enc) for a campaigns row."""
        return (self._cipher.seal_json(agent_config, "campaigns.agent_config"),  # type: ignore[return-value]
                self._cipher.seal(from_number, "campaigns.from"))

    def campaign_agent_config(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if row["agent_config_enc"] is not None:
            return self._cipher.open_json(row["agent_config_enc"], "campaigns.agent_config") or {}
        return _json(row["agent_config"]) or {}

    def campaign_from_number(self, row: Mapping[str, Any]) -> str | None:
        if row["from_enc"] is not None:
            return self._cipher.open(row["from_enc"], "campaigns.from")
        return row["from_number"]

    def seal_dialer_config(self, config: dict[str, Any]) -> str:
        return self._cipher.seal_json(config, "campaign_dialer.config")  # type: ignore[return-value]

    def dialer_config(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A campaign_dialer row's config (its caller numbers among it), as JSON."""
        if row["config_enc"] is not None:
            return self._cipher.open_json(row["config_enc"], "campaign_dialer.config")  # type: ignore[no-any-return]
        return _json(row["config"])  # type: ignore[no-any-return]

    def _campaign(self, row: Mapping[str, Any]) -> Campaign:
        plain = {k: row[k] for k in ("id", "org_id", "name", "status", "created_at", "updated_at")}
        return Campaign.model_validate({**plain, "agent_config": self.campaign_agent_config(row),
                                        "from_number": self.campaign_from_number(row)})

    async def create_campaign(self, org_id: UUID, name: str, agent_config: dict[str, Any] | None = None,
                              from_number: str | None = None) -> Campaign:
        now = utcnow()
        campaign = Campaign(id=uuid4(), org_id=org_id, name=name, agent_config=agent_config or {},
                            from_number=from_number, created_at=now, updated_at=now)
        agent_config_enc, from_enc = self.seal_campaign(campaign.agent_config, from_number)
        await self._execute(
            "INSERT INTO campaigns (id, org_id, name, status, agent_config_enc, from_enc, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            campaign.id, org_id, name, campaign.status, agent_config_enc, from_enc, now, now,
        )
        return campaign

    async def get_campaign(self, org_id: UUID, campaign_id: UUID) -> Campaign | None:
        row = await self._fetchrow("SELECT * FROM campaigns WHERE id = $1 AND org_id = $2", campaign_id, org_id)
        return None if row is None else self._campaign(row)

    def _contact(self, row: dict[str, Any]) -> CampaignContact:
        c = self._cipher
        return CampaignContact(
            id=row["id"], org_id=row["org_id"], campaign_id=row["campaign_id"],
            phone=c.open(row["phone_enc"], "campaign_contacts.phone"), phone_hash=row["phone_hash"],
            data=c.open_json(row["data_enc"], "campaign_contacts.data"), status=row["status"],
            attempts=row["attempts"], last_call_id=row["last_call_id"],
            created_at=row["created_at"], updated_at=row["updated_at"],
        )

    async def add_campaign_contact(self, org_id: UUID, campaign_id: UUID, phone: str,
                                   data: dict[str, Any] | None = None) -> CampaignContact:
        now = utcnow()
        contact = CampaignContact(id=uuid4(), org_id=org_id, campaign_id=campaign_id, phone=phone,
                                  phone_hash=self.hash_phone(phone), data=data, created_at=now, updated_at=now)
        try:
            await self._execute(
                "INSERT INTO campaign_contacts (id, org_id, campaign_id, phone_enc, phone_hash, data_enc, status,"
                " attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
                contact.id, org_id, campaign_id, self._cipher.seal(phone, "campaign_contacts.phone"),
                contact.phone_hash, self._cipher.seal_json(data, "campaign_contacts.data"), contact.status, now, now,
            )
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict("that number is already in the campaign") from None
            raise
        return contact

    async def list_campaign_contacts(self, org_id: UUID, campaign_id: UUID) -> list[CampaignContact]:
        rows = await self._fetch(
            "SELECT * FROM campaign_contacts WHERE org_id = $1 AND campaign_id = $2 ORDER BY created_at, id",
            org_id, campaign_id,
        )
        return [self._contact(r) for r in rows]

    # -- calls -------------------------------------------------------------------------

    _CALL_PLAIN = (
        "id", "org_id", "direction", "to_hash", "from_hash", "status", "campaign_id", "call_control_id",
        "call_leg_id", "call_session_id", "created_at", "updated_at", "answered_at", "ended_at",
        "hangup_requested_at", "hangup_cause", "hangup_source", "sip_hangup_cause", "quality", "recording_id",
        "cost_amount", "cost_currency", "amd_result", "stream_state", "error", "erased_at",
        "idempotency_key_hash", "request_fingerprint",
    )
    _CALL_SEALED = {
        "to_number": ("to_enc", "calls.to", False),
        "from_number": ("from_enc", "calls.from", False),
        "agent_config": ("agent_config_enc", "calls.agent_config", True),
        "summary": ("summary_enc", "calls.summary", False),
        "outcome": ("outcome_enc", "calls.outcome", True),
        "recording_url": ("recording_url_enc", "calls.recording_url", False),
    }

    def _call_columns(self, call: Call, fields: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in fields:
            value = getattr(call, field)
            if field in self._CALL_SEALED:
                column, context, is_json = self._CALL_SEALED[field]
                if is_json:
                    out[column] = None if value is None else self._cipher.seal_json(value, context)
                else:
                    out[column] = self._cipher.seal(value, context)
            elif field == "status_history":
                out["status_history"] = [s.model_dump(mode="json") for s in value]
            else:
                out[field] = value
        return out

    def _call(self, row: dict[str, Any]) -> Call:
        data = {name: row[name] for name in self._CALL_PLAIN}
        for field, (column, context, is_json) in self._CALL_SEALED.items():
            token = row[column]
            data[field] = self._cipher.open_json(token, context) if is_json else self._cipher.open(token, context)
        if data["agent_config"] is None:
            data["agent_config"] = {}
        data["status_history"] = tuple(StatusChange.model_validate(s) for s in _json(row["status_history"]))
        data["quality"] = _json(row["quality"]) if row["quality"] is not None else None
        data["error"] = _json(row["error"]) if row["error"] is not None else None
        return Call.model_validate(data)

    async def create_call(self, call: Call) -> Call:
        call = call.model_copy(update={
            "to_hash": self.hash_phone(call.to_number) if call.to_number else call.to_hash,
            "from_hash": self.hash_phone(call.from_number) if call.from_number else call.from_hash,
        })
        columns = self._call_columns(call, [*self._CALL_PLAIN, *self._CALL_SEALED, "status_history"])
        names = list(columns)
        placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        try:
            await self._execute(f"INSERT INTO calls ({', '.join(names)}) VALUES ({placeholders})",
                                *columns.values())
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict("a call with that id or call_control_id already exists") from None
            raise
        return call

    async def get_call(self, org_id: UUID, call_id: UUID) -> Call | None:
        row = await self._fetchrow("SELECT * FROM calls WHERE id = $1 AND org_id = $2", call_id, org_id)
        return None if row is None else self._call(row)

    async def get_call_by_idempotency_key(self, org_id: UUID, key_hash: str) -> Call | None:
        row = await self._fetchrow("SELECT * FROM calls WHERE org_id = $1 AND idempotency_key_hash = $2",
                                   org_id, key_hash)
        return None if row is None else self._call(row)

    async def get_call_unscoped(self, call_id: UUID) -> Call | None:
        row = await self._fetchrow("SELECT * FROM calls WHERE id = $1", call_id)
        return None if row is None else self._call(row)

    async def find_call_by_control_id(self, call_control_id: str) -> Call | None:
        row = await self._fetchrow("SELECT * FROM calls WHERE call_control_id = $1", call_control_id)
        return None if row is None else self._call(row)

    async def find_call_by_leg_id(self, call_leg_id: str) -> Call | None:
        row = await self._fetchrow("SELECT * FROM calls WHERE call_leg_id = $1 ORDER BY created_at DESC LIMIT 1",
                                   call_leg_id)
        return None if row is None else self._call(row)

    async def list_unconfirmed_dials(self, before: datetime, *, limit: int = 100) -> list[Call]:
        rows = await self._fetch(
            "SELECT * FROM calls WHERE status = 'queued' AND call_control_id IS NULL AND created_at < $1"
            " ORDER BY created_at LIMIT $2", before, limit)
        return [self._call(row) for row in rows]

    async def list_answered_calls(self, answered_before: datetime, *, limit: int = 200) -> list[Call]:
        rows = await self._fetch(
            "SELECT * FROM calls WHERE status = 'answered' AND answered_at < $1 ORDER BY answered_at LIMIT $2",
            answered_before, limit)
        return [self._call(row) for row in rows]

    async def update_call(self, call_id: UUID, mutate: CallMutation) -> Call | None:
        async with self.transaction() as conn:
            row = await conn.fetchrow(f"SELECT * FROM calls WHERE id = $1 {self.for_update}", call_id)
            if row is None:
                return None
            before = self._call(row)
            after = mutate(before)
            if after is None or after == before:
                return before
            changed = [f for f in Call.model_fields if getattr(before, f) != getattr(after, f)]
            if "updated_at" not in changed:
                after = after.model_copy(update={"updated_at": utcnow()})
                changed.append("updated_at")
            columns = self._call_columns(after, changed)
            assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
            try:
                await conn.execute(f"UPDATE calls SET {assignments} WHERE id = $1", call_id, *columns.values())
            except Exception as exc:
                if self._is_unique_violation(exc):
                    raise Conflict("call_control_id already belongs to another call") from None
                raise
            return after

    async def list_calls(self, org_id: UUID, *, status: str | None = None, campaign_id: UUID | None = None,
                         since: datetime | None = None, until: datetime | None = None, limit: int = 50,
                         after: tuple[datetime, UUID] | None = None, direction: str | None = None) -> CallPage:
        where = ["org_id = $1"]
        args: list[Any] = [org_id]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if status is not None:
            where.append(f"status = {arg(status)}")
        if campaign_id is not None:
            where.append(f"campaign_id = {arg(campaign_id)}")
        if direction is not None:
            where.append(f"direction = {arg(direction)}")
        if since is not None:
            where.append(f"created_at >= {arg(since)}")
        if until is not None:
            where.append(f"created_at < {arg(until)}")
        if after is not None:
            where.append(f"(created_at, id) < ({arg(after[0])}, {arg(after[1])})")
        sql = (f"SELECT * FROM calls WHERE {' AND '.join(where)} "
               f"ORDER BY created_at DESC, id DESC LIMIT {arg(limit + 1)}")
        rows = await self._fetch(sql, *args)
        calls = [self._call(r) for r in rows[:limit]]
        more = len(rows) > limit
        cursor = (calls[-1].created_at, calls[-1].id) if more and calls else None
        return CallPage(calls=tuple(calls), next_cursor=cursor)

    async def list_live_calls(self, org_id: UUID, *, limit: int = 200) -> list[Call]:
        rows = await self._fetch(
            "SELECT * FROM calls WHERE org_id = $1 AND status IN ('queued', 'initiated', 'answered')"
            " ORDER BY created_at DESC, id DESC LIMIT $2", org_id, limit)
        return [self._call(r) for r in rows]

    # -- turns -------------------------------------------------------------------------

    def _turn(self, row: dict[str, Any]) -> Turn:
        return Turn(
            call_id=row["call_id"], org_id=row["org_id"], index=row["idx"],
            caller_text=self._cipher.open(row["caller_text_enc"], "turns.caller_text"),
            agent_text=self._cipher.open(row["agent_text_enc"], "turns.agent_text"),
            interrupted=bool(row["interrupted"]), latency=_json(row["latency"]), created_at=row["created_at"],
        )

    async def upsert_turn(self, turn: Turn) -> Turn:
        await self._execute(
            "INSERT INTO turns (call_id, idx, org_id, caller_text_enc, agent_text_enc, interrupted, latency,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (call_id, idx) DO UPDATE SET caller_text_enc = excluded.caller_text_enc,"
            " agent_text_enc = excluded.agent_text_enc, interrupted = excluded.interrupted,"
            " latency = excluded.latency",
            turn.call_id, turn.index, turn.org_id, self._cipher.seal(turn.caller_text, "turns.caller_text"),
            self._cipher.seal(turn.agent_text, "turns.agent_text"), turn.interrupted, turn.latency, turn.created_at,
        )
        return turn

    async def list_turns(self, call_id: UUID) -> list[Turn]:
        rows = await self._fetch("SELECT * FROM turns WHERE call_id = $1 ORDER BY idx", call_id)
        return [self._turn(r) for r in rows]

    async def last_turn_latencies(self, call_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        if not call_ids:
            return {}
        marks = ", ".join(f"${i}" for i in range(1, len(call_ids) + 1))
        rows = await self._fetch(
            "SELECT t.call_id AS call_id, t.latency AS latency FROM turns t JOIN (SELECT call_id, max(idx) AS idx"
            f" FROM turns WHERE call_id IN ({marks}) GROUP BY call_id) last"
            " ON t.call_id = last.call_id AND t.idx = last.idx", *call_ids)
        return {r["call_id"] if isinstance(r["call_id"], UUID) else UUID(r["call_id"]): _json(r["latency"])
                for r in rows}

    async def list_turn_latencies(self, org_id: UUID, *, since: datetime, calls_since: datetime,
                                  limit: int) -> list[tuple[datetime, dict[str, Any]]]:
        rows = await self._fetch(
            "SELECT t.created_at AS at, t.latency AS latency FROM calls c JOIN turns t ON t.call_id = c.id"
            " WHERE c.org_id = $1 AND c.created_at >= $2 AND t.created_at >= $3"
            " ORDER BY t.created_at DESC LIMIT $4", org_id, calls_since, since, limit)
        return [(_datetime(r["at"]), _json(r["latency"])) for r in reversed(rows)]

    # -- webhook events ----------------------------------------------------------------

    def _event(self, row: dict[str, Any]) -> StoredEvent:
        data = dict(row)
        data["payload"] = self._cipher.open_json(data.pop("payload_enc"), "call_events.payload")
        return StoredEvent.model_validate(data)

    async def insert_event(self, event: StoredEvent) -> bool:
        row = await self._fetchrow(
            "INSERT INTO call_events (event_id, event_type, occurred_at, call_control_id, org_id, call_id,"
            " payload_enc, from_hash, to_hash, received_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
            " $10, 0) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            event.event_id, event.event_type, event.occurred_at, event.call_control_id, event.org_id, event.call_id,
            self._cipher.seal_json(event.payload, "call_events.payload"), event.from_hash, event.to_hash,
            event.received_at,
        )
        return row is not None

    async def get_event(self, event_id: str) -> StoredEvent | None:
        row = await self._fetchrow("SELECT * FROM call_events WHERE event_id = $1", event_id)
        return None if row is None else self._event(row)

    async def claim_events(self, *, limit: int, lease_s: float, now: datetime | None = None) -> list[StoredEvent]:
        now = now or utcnow()
        rows = await self._fetch(
            "UPDATE call_events SET claimed_at = $1, attempts = attempts + 1 WHERE event_id IN ("
            " SELECT event_id FROM call_events WHERE processed_at IS NULL"
            " AND (claimed_at IS NULL OR claimed_at < $2)"
            f" ORDER BY received_at LIMIT $3 {self.skip_locked}) RETURNING *",
            now, now - timedelta(seconds=lease_s), limit,
        )
        events = [self._event(r) for r in rows]
        events.sort(key=lambda e: (e.occurred_at or e.received_at, e.received_at))
        return events

    async def complete_event(self, event_id: str, *, org_id: UUID | None, call_id: UUID | None,
                             error: str | None = None) -> None:
        await self._execute(
            "UPDATE call_events SET processed_at = $2, org_id = COALESCE($3, org_id),"
            " call_id = COALESCE($4, call_id), last_error = $5 WHERE event_id = $1",
            event_id, utcnow(), org_id, call_id, error,
        )

    async def retry_event(self, event_id: str, *, error: str, retry_in_s: float, lease_s: float) -> None:
        # Claimable again once claimed_at < now - lease: back-date the claim accordingly.
        claimed = utcnow() - timedelta(seconds=lease_s) + timedelta(seconds=retry_in_s)
        await self._execute("UPDATE call_events SET claimed_at = $2, last_error = $3 WHERE event_id = $1",
                            event_id, claimed, error)

    async def list_call_events(self, call_id: UUID) -> list[EventSummary]:
        rows = await self._fetch(
            "SELECT event_id, event_type, occurred_at, received_at FROM call_events WHERE call_id = $1"
            " ORDER BY occurred_at, received_at",
            call_id,
        )
        return [EventSummary.model_validate(r) for r in rows]

    async def count_unprocessed_events(self) -> int:
        row = await self._fetchrow("SELECT count(*) AS n FROM call_events WHERE processed_at IS NULL")
        return int(row["n"]) if row else 0

    # -- do-not-call -------------------------------------------------------------------

    async def add_dnc(self, org_id: UUID, phone: str, *, reason: str | None = None, source: str = "api") -> bool:
        row = await self._fetchrow(
            "INSERT INTO dnc_entries (org_id, phone_hash, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (org_id, phone_hash) DO NOTHING RETURNING phone_hash",
            org_id, self.hash_phone(phone), reason, source, utcnow(),
        )
        return row is not None

    async def add_dnc_many(self, org_id: UUID, entries: Sequence[tuple[str, str | None]], *, source: str) -> int:
        now = utcnow()
        rows = [(org_id, self.hash_phone(phone), reason, source, now) for phone, reason in entries]
        async with self.transaction() as conn:
            before = await conn.fetchrow("SELECT count(*) AS n FROM dnc_entries WHERE org_id = $1", org_id)
            await conn.executemany(
                "INSERT INTO dnc_entries (org_id, phone_hash, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (org_id, phone_hash) DO NOTHING",
                rows,
            )
            after = await conn.fetchrow("SELECT count(*) AS n FROM dnc_entries WHERE org_id = $1", org_id)
        return int(after["n"]) - int(before["n"])  # type: ignore[index]

    async def remove_dnc(self, org_id: UUID, phone: str) -> bool:
        n = await self._execute("DELETE FROM dnc_entries WHERE org_id = $1 AND phone_hash = $2",
                                org_id, self.hash_phone(phone))
        return n > 0

    async def get_dnc(self, org_id: UUID, phone: str) -> DncEntry | None:
        row = await self._fetchrow("SELECT * FROM dnc_entries WHERE org_id = $1 AND phone_hash = $2",
                                   org_id, self.hash_phone(phone))
        return None if row is None else DncEntry.model_validate(row)

    # -- erasure -----------------------------------------------------------------------

    async def erase_phone(self, org_id: UUID, phone: str) -> ErasureResult:
        """Remove every trace of ``phone`` from the organisation's records, in one transaction.

        Calls keep their hash (``to_hash``/``from_hash``), status and timings; the number,
        transcripts, summary, outcome, recording URL and the call's agent config go.
        Stored webhooks about those calls, or naming the number, keep allow-listed
        identifiers only. Campaign contacts keep the hash (so the number is not re-added).
        DNC entries are hashes already and stay: erasure must not make a number callable.
        """
        digest = self.hash_phone(phone)
        needles = needles_for(phone)
        now = utcnow()
        counts: dict[str, int] = dict.fromkeys(ErasureCounts.model_fields, 0)
        call_ids: list[UUID] = []
        control_ids: list[str] = []
        recording_ids: list[str] = []
        async with self.transaction() as conn:
            rows = await conn.fetch(
                f"SELECT * FROM calls WHERE org_id = $1 AND (to_hash = $2 OR from_hash = $2) {self.for_update}",
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
                error = _json(row["error"]) if row["error"] is not None else None
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
            await conn.execute(
                "INSERT INTO erasures (id, org_id, phone_hash, counts, created_at) VALUES ($1, $2, $3, $4, $5)",
                uuid4(), org_id, digest, counts, now,
            )
        return ErasureResult(**counts, call_ids=tuple(call_ids), call_control_ids=tuple(control_ids),
                             recording_ids=tuple(recording_ids))

    async def list_erasures(self, org_id: UUID) -> list[Erasure]:
        rows = await self._fetch("SELECT * FROM erasures WHERE org_id = $1 ORDER BY created_at", org_id)
        return [Erasure.model_validate({**r, "counts": _json(r["counts"])}) for r in rows]

    # -- dialect hooks -------------------------------------------------------------------

    @staticmethod
    @abc.abstractmethod
    def _is_unique_violation(exc: BaseException) -> bool: ...
