"""The organisation's settings pages: API keys, inbound numbers, the do-not-call list.

Each action is a POST (the gate has checked its CSRF token) that goes through the same
functions as the REST API and returns to its page with a fixed notice, or re-renders the
page with a message naming what was wrong (never the submitted value)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import ValidationError

from ..agents import AgentOverrides
from ..auth import issue_api_key
from ..errors import ApiError
from ..numbers import NumberTaken, register_number
from ..phone import InvalidPhoneNumber, normalize_e164
from ..store import Conflict
from .forms import (
    AGENT_TEXT_FIELDS,
    ON_OFF_DEFAULT,
    FormData,
    FormRefused,
    agent_config,
    agent_error_field,
    kept,
    refusal,
)
from .pages import dashboard_of, form_field, page, viewer_of

MAX_NAME = 100
MAX_REASON = 500


def _back(path: str, notice: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/dashboard/{path}?notice={notice}")


# -- API keys --------------------------------------------------------------------------------------


async def _keys_page(request: web.Request, *, error: str | None = None, created: str | None = None,
                     status: int = 200) -> web.Response:
    repo = await dashboard_of(request).cp.repository()
    keys = await repo.list_api_keys(viewer_of(request).org.id)
    return page(request, "keys.html", {"keys": keys, "error": error, "created_secret": created,
                                       "current_key": viewer_of(request).session.api_key_id}, status=status)


async def keys(request: web.Request) -> web.Response:
    return await _keys_page(request)


async def create_key(request: web.Request) -> web.Response:
    form = await request.post()
    name = (form_field(form, "name") or "").strip()
    if not name or len(name) > MAX_NAME:
        return await _keys_page(request, error=f"A key needs a name of 1 to {MAX_NAME} characters.", status=400)
    repo = await dashboard_of(request).cp.repository()
    _, secret = await issue_api_key(repo, viewer_of(request).org.id, name)
    return await _keys_page(request, created=secret, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    try:
        key_id = UUID(request.match_info["key_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such API key") from None
    repo = await dashboard_of(request).cp.repository()
    try:
        key = await repo.revoke_api_key(viewer_of(request).org.id, key_id, keep_one_active=True)
    except Conflict:
        return await _keys_page(request, error="That is the organisation's last active key; create another "
                                               "one first.", status=409)
    if key is None:
        raise ApiError(404, "not_found", "no such API key")
    raise _back("keys", "key_revoked")  # revoking the key this session signed in with ends the session


# -- inbound numbers -------------------------------------------------------------------------------


async def _numbers_page(request: web.Request, *, refused: FormRefused | None = None,
                        submitted: FormData | None = None, status: int = 200) -> web.Response:
    repo = await dashboard_of(request).cp.repository()
    numbers = await repo.list_phone_numbers(viewer_of(request).org.id)
    names = {name: name for name in (*AGENT_TEXT_FIELDS, "number", "record")}
    return page(request, "numbers.html", {
        "numbers": numbers, "error": str(refused) if refused else None,
        "field_errors": refused.fields if refused else {}, "values": kept(submitted, refused, names),
    }, status=status)


async def numbers(request: web.Request) -> web.Response:
    return await _numbers_page(request)


def number_agent_config(form: FormData) -> dict[str, Any]:
    """The number's agent config from the form, checked by the API's model (422 names a field)."""
    config: dict[str, Any] = agent_config(form)
    record = form.get("record")
    if record not in ON_OFF_DEFAULT:
        raise FormRefused("check these fields: record", fields={"record": "choose one of the options"})
    if ON_OFF_DEFAULT[record] is not None:
        config["record"] = ON_OFF_DEFAULT[record]
    try:
        AgentOverrides.model_validate(config)
    except ValidationError as exc:
        raise refusal(exc, {}, status=422) from None
    return config


async def add_number(request: web.Request) -> web.Response:
    dash, viewer = dashboard_of(request), viewer_of(request)
    form = FormData.of(await request.post())
    repo = await dash.cp.repository()
    try:
        config = number_agent_config(form)
        await register_number(repo, dash.cp.settings, viewer.org.id, form.get("number"), config)
    except FormRefused as exc:
        return await _numbers_page(request, refused=exc, submitted=form, status=exc.status)
    except InvalidPhoneNumber as exc:
        return await _numbers_page(request, refused=FormRefused(f"Number: {exc}.", fields={"number": str(exc)}),
                                   submitted=form, status=400)
    except NumberTaken:
        return await _numbers_page(request, refused=FormRefused("That number is already registered.",
                                                                fields={"number": "already registered"}),
                                   submitted=form, status=409)
    except ApiError as exc:  # an agent that cannot run (unknown personality, voice): the API's 422
        return await _numbers_page(request, refused=FormRefused(exc.message, fields=agent_error_field(exc.message)),
                                   submitted=form, status=exc.status)
    raise _back("numbers", "number_added")


async def remove_number(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        number = normalize_e164(form_field(form, "number") or "")
    except InvalidPhoneNumber as exc:
        return await _numbers_page(request, refused=FormRefused(f"Number: {exc}."), status=400)
    repo = await dashboard_of(request).cp.repository()
    if not await repo.remove_phone_number(viewer_of(request).org.id, number):
        raise ApiError(404, "not_found", "this organisation has no such number")
    raise _back("numbers", "number_removed")


# -- do-not-call -----------------------------------------------------------------------------------


async def _dnc_page(request: web.Request, *, error: str | None = None, checked: dict[str, Any] | None = None,
                    status: int = 200) -> web.Response:
    return page(request, "dnc.html", {"error": error, "checked": checked}, status=status)


async def dnc(request: web.Request) -> web.Response:
    return await _dnc_page(request)


async def _dnc_phone(request: web.Request) -> tuple[str | None, web.Response | None]:
    form = await request.post()
    try:
        return normalize_e164(form_field(form, "phone") or ""), None
    except InvalidPhoneNumber as exc:
        return None, await _dnc_page(request, error=f"Number: {exc}.", status=400)


async def dnc_add(request: web.Request) -> web.Response:
    phone, refused = await _dnc_phone(request)
    if phone is None:
        return refused  # type: ignore[return-value]
    reason = (form_field(await request.post(), "reason") or "").replace("\x00", "").strip()[:MAX_REASON] or None
    repo = await dashboard_of(request).cp.repository()
    added = await repo.add_dnc(viewer_of(request).org.id, phone, reason=reason, source="dashboard")
    raise _back("dnc", "dnc_added" if added else "dnc_already")


async def dnc_check(request: web.Request) -> web.Response:
    phone, refused = await _dnc_phone(request)
    if phone is None:
        return refused  # type: ignore[return-value]
    repo = await dashboard_of(request).cp.repository()
    entry = await repo.get_dnc(viewer_of(request).org.id, phone)
    return await _dnc_page(request, checked={"phone": phone, "entry": entry})


async def dnc_remove(request: web.Request) -> web.Response:
    phone, refused = await _dnc_phone(request)
    if phone is None:
        return refused  # type: ignore[return-value]
    repo = await dashboard_of(request).cp.repository()
    removed = await repo.remove_dnc(viewer_of(request).org.id, phone)
    raise _back("dnc", "dnc_removed" if removed else "dnc_absent")
