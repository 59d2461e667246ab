"""REST handlers for the organisation's own lines (inbound numbers), its settings and its erasure."""

from __future__ import annotations

from aiohttp import web

from engine.conversation.context import SIGNATURE_HEADER, TIMESTAMP_HEADER

from .. import gdpr
from ..context import control_plane
from ..errors import ApiError, json_response, parse_query, read_json
from ..numbers import NumberTaken, reconfigure_number, register_number, update_settings
from ..phone import InvalidPhoneNumber
from ..store import utcnow
from .handlers import _org, _phone_param
from .schemas import (
    AddNumberRequest,
    EraseOrganisationQuery,
    NumberList,
    NumberOut,
    NumberRemoved,
    OrganisationErasureReceipt,
    OrganisationOut,
    OrganisationSettingsPatch,
    ToolSigningSecret,
    UpdateNumberRequest,
    agent_overrides,
)


async def add_number(request: web.Request) -> web.Response:
    body = await read_json(request, AddNumberRequest)
    cp = control_plane(request)
    repo = await cp.repository()
    try:
        number = await register_number(repo, cp.settings, _org(request).id, body.number,
                                       agent_overrides(body.agent_config))
    except NumberTaken as exc:
        raise ApiError(409, "number_taken", str(exc)) from None
    except InvalidPhoneNumber as exc:  # (the schema checked it already; kept for the record)
        raise ApiError(400, "validation_error", str(exc)) from None
    return json_response(NumberOut.model_validate(number, from_attributes=True), status=201)


async def list_numbers(request: web.Request) -> web.Response:
    repo = await control_plane(request).repository()
    numbers = await repo.list_phone_numbers(_org(request).id)
    return json_response(NumberList(data=[NumberOut.model_validate(n, from_attributes=True) for n in numbers]))


async def update_number(request: web.Request) -> web.Response:
    number = _phone_param(request)
    body = await read_json(request, UpdateNumberRequest)
    cp = control_plane(request)
    repo = await cp.repository()
    updated = await reconfigure_number(repo, cp.settings, _org(request).id, number, agent_overrides(body.agent_config))
    if updated is None:
        raise ApiError(404, "not_found", "this organisation has no such number")
    return json_response(NumberOut.model_validate(updated, from_attributes=True))


async def remove_number(request: web.Request) -> web.Response:
    number = _phone_param(request)
    repo = await control_plane(request).repository()
    if not await repo.remove_phone_number(_org(request).id, number):
        raise ApiError(404, "not_found", "this organisation has no such number")
    return json_response(NumberRemoved(number=number))


async def get_organisation(request: web.Request) -> web.Response:
    return json_response(OrganisationOut.model_validate(_org(request), from_attributes=True))


async def update_organisation_settings(request: web.Request) -> web.Response:
    body = await read_json(request, OrganisationSettingsPatch)
    repo = await control_plane(request).repository()
    try:
        org = await update_settings(repo, _org(request).id, body.model_dump(exclude_unset=True),
                                  settings=control_plane(request).settings)
    except ValueError as exc:  # an allow-list entry that is neither a host nor a network (named by position)
        raise ApiError(400, "validation_error", str(exc)) from None
    if org is None:  # the organisation was erased while its key was still in use
        raise ApiError(404, "not_found", "no such organisation")
    return json_response(OrganisationOut.model_validate(org, from_attributes=True))


async def get_tool_signing_secret(request: web.Request) -> web.Response:
    """The secrets this organisation's HTTP tool requests are signed with (derived per
    organisation from the server's ``tools.signing_key``; see engine/conversation/context.py)."""
    secrets = control_plane(request).settings.tools.signing_secrets(str(_org(request).id))
    if not secrets:
        raise ApiError(409, "signing_disabled", "this server does not sign tool requests "
                       "(the operator sets CALLAGENT_TOOLS__SIGNING_KEY)")
    return json_response(ToolSigningSecret(secrets=list(secrets), timestamp_header=TIMESTAMP_HEADER,
                                           signature_header=SIGNATURE_HEADER))


async def erase_organisation(request: web.Request) -> web.Response:
    """Erase the key's own organisation, everything it owns and its keys (this key stops working)."""
    query = parse_query(request, EraseOrganisationQuery)
    org = _org(request)
    if query.confirm != org.id:
        raise ApiError(400, "confirmation_mismatch", "confirm must be this organisation's id")
    cp = control_plane(request)
    repo = await cp.repository()
    try:
        erased = await gdpr.erase_organisation(repo, cp.knowledge.store(repo), cp.sessions, org.id)
    except gdpr.OrganisationBusy as exc:
        raise ApiError(409, "organisation_busy", str(exc)) from None
    if erased is None:  # erased by another request meanwhile
        raise ApiError(404, "not_found", "no such organisation")
    return json_response(OrganisationErasureReceipt(
        organisation_id=org.id, erased_at=utcnow(), erased=erased.counts, sessions=erased.sessions,
        carrier_recordings=list(erased.recording_ids)))
