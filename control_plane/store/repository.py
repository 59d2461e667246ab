"""The store as the rest of the control plane sees it: one repository per aggregate over one database.

:class:`Repository` opens nothing itself; it is handed a :class:`~.db.Database` (PostgreSQL or
SQLite) and the data keys, and builds the aggregates' repositories over them:

================  ============================================  ==========================
attribute         records                                       module
================  ============================================  ==========================
organisations     organisations and their API keys              :mod:`.organisations`
numbers           phone numbers answered inbound                :mod:`.numbers`
calls             calls (``calls.codec`` for other aggregates)  :mod:`.calls`
turns             a call's turns and their latency              :mod:`.turns`
events            received Telnyx webhooks (the work queue)     :mod:`.events`
dnc               the do-not-call list                          :mod:`.dnc`
erasure           GDPR erasures and their receipts              :mod:`.erasure`
usage             what each call used of its providers          :mod:`.usage`
================  ============================================  ==========================

Campaigns and their contacts are the campaign package's own repository
(:class:`control_plane.campaigns.store.CampaignStore`), written over the same public pieces.

The flat names (``repo.get_call(...)`` for ``repo.calls.get_call(...)``) are the same bound
methods, kept so callers read one name per operation; they add no behaviour. Sealing and
hashing happen inside the repositories, so callers handle plaintext records and nothing
personal reaches a query in clear. Every method a caller reaches through the API takes the
organisation id and filters on it: another organisation's row is simply not found.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from ..crypto import DataKeys
from .calls import CallCodec, SqlCallRepository
from .db import Conn, Database
from .dnc import SqlDncRepository
from .erasure import SqlErasureRepository
from .events import SqlEventRepository
from .hooks import ChangeHooks
from .numbers import SqlPhoneNumberRepository
from .organisations import SqlOrganisationRepository
from .turns import SqlTurnRepository
from .usage import SqlUsageRepository


class Repository:
    def __init__(self, db: Database, keys: DataKeys) -> None:
        self.db = db
        self.keys = keys
        self.dialect = db.dialect
        self.organisations = organisations = SqlOrganisationRepository(db)
        self.numbers = numbers = SqlPhoneNumberRepository(db)
        # Who is told of writes inside their transaction (the webhook outbox): one holder for all.
        self.hooks = hooks = ChangeHooks()
        self.calls = calls = SqlCallRepository(db, CallCodec(keys, hooks))
        self.turns = turns = SqlTurnRepository(db, keys, hooks)
        self.events = events = SqlEventRepository(db, keys)
        self.dnc = dnc = SqlDncRepository(db, keys)
        self.erasure = erasure = SqlErasureRepository(db, keys, hooks)
        self.usage = usage = SqlUsageRepository(db)

        self.hash_phone = keys.hasher.phone
        self.hash_request = keys.hasher.request
        self.hash_idempotency_key = keys.hasher.idempotency_key

        self.create_organisation = organisations.create_organisation
        self.get_organisation = organisations.get_organisation
        self.list_organisations = organisations.list_organisations
        self.update_organisation_settings = organisations.update_organisation_settings
        self.insert_api_key = organisations.insert_api_key
        self.find_api_key = organisations.find_api_key
        self.list_api_keys = organisations.list_api_keys
        self.revoke_api_key = organisations.revoke_api_key

        self.add_phone_number = numbers.add_phone_number
        self.find_phone_number = numbers.find_phone_number
        self.list_phone_numbers = numbers.list_phone_numbers
        self.remove_phone_number = numbers.remove_phone_number
        self.update_phone_number = numbers.update_phone_number

        self.add_usage = usage.add_usage
        self.get_usage = usage.get_usage
        self.usage_rows = usage.usage_rows

        self.create_call = calls.create_call
        self.get_call = calls.get_call
        self.get_call_by_idempotency_key = calls.get_call_by_idempotency_key
        self.get_call_unscoped = calls.get_call_unscoped
        self.find_call_by_control_id = calls.find_call_by_control_id
        self.find_call_by_leg_id = calls.find_call_by_leg_id
        self.list_unconfirmed_dials = calls.list_unconfirmed_dials
        self.list_answered_calls = calls.list_answered_calls
        self.update_call = calls.update_call
        self.list_calls = calls.list_calls
        self.list_live_calls = calls.list_live_calls

        self.upsert_turn = turns.upsert_turn
        self.list_turns = turns.list_turns
        self.last_turn_latencies = turns.last_turn_latencies
        self.list_turn_latencies = turns.list_turn_latencies

        self.insert_event = events.insert_event
        self.get_event = events.get_event
        self.claim_events = events.claim_events
        self.complete_event = events.complete_event
        self.retry_event = events.retry_event
        self.list_call_events = events.list_call_events
        self.count_unprocessed_events = events.count_unprocessed_events

        self.add_dnc = dnc.add_dnc
        self.add_dnc_many = dnc.add_dnc_many
        self.remove_dnc = dnc.remove_dnc
        self.get_dnc = dnc.get_dnc

        self.erase_phone = erasure.erase_phone
        self.list_erasures = erasure.list_erasures
        self.erase_organisation = erasure.erase_organisation

    def connection(self) -> AbstractAsyncContextManager[Conn]:
        return self.db.connection()

    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        return self.db.transaction()

    async def close(self) -> None:
        await self.db.close()
