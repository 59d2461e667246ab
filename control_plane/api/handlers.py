"""REST handlers. Each reads the organisation the auth middleware put on the request and
never touches another organisation's rows; bodies are validated before anything is written."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from uuid import UUID

import orjson
from aiohttp import web

from .. import dnc, gdpr
from ..auth import ORG, issue_api_key
from ..calls import CallService, DialRequest
from ..context import control_plane
from ..errors import ApiError, json_response, parse_query, read_body, read_json
from ..phone import InvalidPhoneNumber, normalize_e164
from ..store import Conflict, Organisation, utcnow
from ..store.usage import UsageFigures
from ..usage import call_cost
from .schemas import (
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    CallDetail,
    CallList,
    CallOut,
    CreateApiKeyRequest,
    DncAdded,
    DncAddRequest,
    DncImportResult,
    DncRemoved,
    DncStatus,
    ErasureCountsOut,
    ErasureReceipt,
    EventOut,
    HangupResponse,
    ListCallsQuery,
    StartCallRequest,
    StartCallResponse,
    TurnOut,
    agent_overrides,
)


def _org(request: web.Request) -> Organisation:
    return request[ORG]


def _uuid_param(request: web.Request, name: str, what: str) -> UUID:
    try:
        return UUID(request.match_info[name])
    except ValueError:
        raise ApiError(404, "not_found", f"no such {what}") from None


def _phone_param(request: web.Request) -> str:
    try:
        return normalize_e164(request.match_info["phone"])
    except InvalidPhoneNumber as exc:
        raise ApiError(400, "validation_error", str(exc), [{"loc": ["path", "phone"], "msg": str(exc),
                                                            "type": "value_error"}]) from None


def encode_cursor(created_at: datetime, call_id: UUID) -> str:
    raw = orjson.dumps([created_at.isoformat(), str(call_id)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, call_id = orjson.loads(raw)
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at.astimezone(UTC), UUID(call_id)
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned") from None


# -- calls --------------------------------------------------------------------------------


IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")


async def start_call(request: web.Request) -> web.Response:
    control_plane(request).refuse_new_calls()  # before the body: a draining instance answers 503 to any start
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "validation_error", f"{IDEMPOTENCY_HEADER} must be 1-255 printable ASCII characters",
                       [{"loc": ["header", IDEMPOTENCY_HEADER], "msg": "invalid", "type": "value_error"}])
    body = await read_json(request, StartCallRequest)
    started = await CallService(control_plane(request)).start_call(_org(request), DialRequest(
        to=body.to, from_=body.from_, agent_config=agent_overrides(body.agent_config),
        campaign_id=body.campaign_id, ring_timeout_s=body.ring_timeout_s,
        answering_machine_detection=body.answering_machine_detection,
    ), idempotency_key=key)
    call = started.call
    response = json_response(StartCallResponse(call_id=call.id, call_control_id=call.call_control_id,
                                               status=call.status), status=200 if started.replayed else 201)
    if started.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def hangup_call(request: web.Request) -> web.Response:
    call_id = _uuid_param(request, "call_id", "call")
    call = await CallService(control_plane(request)).hangup(_org(request), call_id)
    return json_response(HangupResponse(status=call.status, hangup_requested=not call.terminal))


async def get_call(request: web.Request) -> web.Response:
    call_id = _uuid_param(request, "call_id", "call")
    repo = await control_plane(request).repository()
    call = await repo.get_call(_org(request).id, call_id)
    if call is None:
        raise ApiError(404, "not_found", "no such call")
    turns = await repo.list_turns(call.id)
    events = await repo.list_call_events(call.id)
    usage = await repo.get_usage(call.org_id, call.id) or UsageFigures()
    lines = call_cost(control_plane(request).settings.pricing, answered_at=call.answered_at,
                      ended_at=call.ended_at, telnyx_cost=call.cost_amount, usage=usage)
    detail = CallDetail(
        **CallOut.fields_of(call), agent_config=call.agent_config, quality=call.quality,
        turns=[TurnOut.of(t) for t in turns],
        events=[EventOut(id=e.event_id, type=e.event_type, occurred_at=e.occurred_at) for e in events],
        usage=usage.as_dict(), cost_items=lines.as_dict(),
    )
    return json_response(detail)


async def list_calls(request: web.Request) -> web.Response:
    cp = control_plane(request)
    query = parse_query(request, ListCallsQuery)
    if query.limit > cp.settings.api.max_page_size:
        raise ApiError(400, "validation_error", f"limit must be at most {cp.settings.api.max_page_size}",
                       [{"loc": ["query", "limit"], "msg": "too large", "type": "less_than_equal"}])
    after = decode_cursor(query.cursor) if query.cursor else None
    repo = await cp.repository()
    page = await repo.list_calls(_org(request).id, status=query.status, campaign_id=query.campaign_id,
                                 since=query.since, until=query.until, limit=query.limit, after=after)
    cursor = encode_cursor(*page.next_cursor) if page.next_cursor else None
    return json_response(CallList(data=[CallOut.of(c) for c in page.calls], next_cursor=cursor))


# -- API keys -------------------------------------------------------------------------------


def _key_out(key) -> dict:  # type: ignore[no-untyped-def]
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "created_at": key.created_at,
            "revoked_at": key.revoked_at, "active": key.revoked_at is None}


async def create_key(request: web.Request) -> web.Response:
    body = await read_json(request, CreateApiKeyRequest)
    repo = await control_plane(request).repository()
    key, secret = await issue_api_key(repo, _org(request).id, body.name)
    return json_response(ApiKeyCreated(**_key_out(key), key=secret), status=201)


async def list_keys(request: web.Request) -> web.Response:
    repo = await control_plane(request).repository()
    keys = await repo.list_api_keys(_org(request).id)
    return json_response(ApiKeyList(data=[ApiKeyOut(**_key_out(k)) for k in keys]))


async def revoke_key(request: web.Request) -> web.Response:
    key_id = _uuid_param(request, "key_id", "API key")
    repo = await control_plane(request).repository()
    try:
        key = await repo.revoke_api_key(_org(request).id, key_id, keep_one_active=True)
    except Conflict:
        raise ApiError(409, "last_active_key", "this is the organisation's last active API key; "
                       "create another one first") from None
    if key is None:
        raise ApiError(404, "not_found", "no such API key")
    return json_response(ApiKeyOut(**_key_out(key)))


# -- do-not-call ------------------------------------------------------------------------------


async def add_dnc(request: web.Request) -> web.Response:
    body = await read_json(request, DncAddRequest)
    repo = await control_plane(request).repository()
    org_id = _org(request).id
    added = await repo.add_dnc(org_id, body.phone, reason=body.reason, source="api")
    entry = await repo.get_dnc(org_id, body.phone)
    return json_response(DncAdded(phone=body.phone, blocked=True, added=added, reason=entry and entry.reason,
                                  source=entry and entry.source, created_at=entry and entry.created_at),
                         status=201 if added else 200)


async def check_dnc(request: web.Request) -> web.Response:
    phone = _phone_param(request)
    repo = await control_plane(request).repository()
    entry = await repo.get_dnc(_org(request).id, phone)
    if entry is None:
        return json_response(DncStatus(phone=phone, blocked=False))
    return json_response(DncStatus(phone=phone, blocked=True, reason=entry.reason, source=entry.source,
                                   created_at=entry.created_at))


async def remove_dnc(request: web.Request) -> web.Response:
    phone = _phone_param(request)
    repo = await control_plane(request).repository()
    if not await repo.remove_dnc(_org(request).id, phone):
        raise ApiError(404, "not_found", "that number is not on the do-not-call list")
    return json_response(DncRemoved(phone=phone))


_CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})


async def import_dnc(request: web.Request) -> web.Response:
    """CSV: one number per row (first column, or a ``phone``/``number`` column under a header)."""
    cp = control_plane(request)
    if request.content_type not in _CSV_TYPES:
        raise ApiError(415, "unsupported_media_type", "send the list as text/csv",
                       {"content_type": request.content_type})
    dnc_file = dnc.read_dnc_csv(await read_body(request), max_rows=cp.settings.api.max_dnc_import_rows)
    added = await dnc.import_dnc(await cp.repository(), _org(request).id, dnc_file)
    invalid = len(dnc_file.invalid_rows)
    return json_response(DncImportResult(rows=dnc_file.rows, valid=dnc_file.rows - invalid, added=added,
                                         already_listed=len(dnc_file.entries) - added, invalid=invalid,
                                         invalid_rows=list(dnc_file.invalid_rows[:100])))


# -- GDPR ---------------------------------------------------------------------------------------


async def erase_contact(request: web.Request) -> web.Response:
    phone = _phone_param(request)
    cp = control_plane(request)
    erased = await gdpr.erase_contact(await cp.repository(), cp.sessions, _org(request).id, phone)
    result = erased.result
    counts = ErasureCountsOut(**{k: getattr(result, k) for k in ErasureCountsOut.model_fields if k != "sessions"},
                              sessions=erased.sessions)
    return json_response(ErasureReceipt(phone_hash=erased.phone_hash, erased_at=utcnow(), erased=counts,
                                        retained=gdpr.RETAINED, carrier_recordings=list(result.recording_ids)))
