"""The organisation's settings pages: API keys and the do-not-call list (numbers: number_views).

Each action is a POST (the gate has checked its CSRF token) that goes through the same
functions as the REST API and returns to its page with a fixed notice, or re-renders the
page with a message naming what was wrong (never the submitted value)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from ..auth import issue_api_key
from ..errors import ApiError
from ..phone import InvalidPhoneNumber, normalize_e164
from ..store import Conflict
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
