"""The organisation's settings page: the :data:`numbers.ORGANISATION_SETTINGS` the control
plane reads, viewed and changed through the same ``update_settings`` as ``PATCH
/api/organisation/settings``. A refused change is shown next to its field; nothing is saved."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ..agents import TOOL_ALLOWED_DESTINATIONS
from ..api.schemas import OrganisationSettingsPatch
from ..errors import ApiError
from ..numbers import update_settings
from .forms import ON_OFF_DEFAULT, FormData, FormRefused, kept, refusal
from .pages import dashboard_of, page, viewer_of


async def _settings_page(request: web.Request, *, refused: FormRefused | None = None,
                         submitted: FormData | None = None, status: int = 200) -> web.Response:
    """The stored settings; on a refusal, what was submitted in the fields that were not refused
    (a refused value is never shown back)."""
    repo = await dashboard_of(request).cp.repository()
    org = await repo.get_organisation(viewer_of(request).org.id)
    if org is None:  # erased while a session was open
        raise ApiError(404, "not_found", "no such organisation")
    settings = org.settings
    record = settings.get("record_calls")
    context: dict[str, Any] = {
        "org": org,
        "record_calls": "" if record is None else ("on" if record else "off"),
        "destinations": "\n".join(settings.get(TOOL_ALLOWED_DESTINATIONS) or ()),
        **kept(submitted, refused, {"record_calls": "record_calls", TOOL_ALLOWED_DESTINATIONS: "destinations"}),
        "error": str(refused) if refused else None,
        "field_errors": refused.fields if refused else {},
    }
    return page(request, "organisation.html", context, status=status)


async def organisation(request: web.Request) -> web.Response:
    return await _settings_page(request)


def settings_changes(form: FormData) -> dict[str, Any]:
    """The PATCH body from the form: every setting the page shows, an empty one reset."""
    record = form.get("record_calls")
    if record not in ON_OFF_DEFAULT:
        raise FormRefused("check these fields: record calls", fields={"record_calls": "choose one of the options"})
    lines = [line.strip() for line in form.get(TOOL_ALLOWED_DESTINATIONS).splitlines() if line.strip()]
    body = {"record_calls": ON_OFF_DEFAULT[record], TOOL_ALLOWED_DESTINATIONS: lines or None}
    try:
        return OrganisationSettingsPatch.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise refusal(exc, {}) from None


async def update_organisation(request: web.Request) -> web.Response:
    form = FormData.of(await request.post())
    repo = await dashboard_of(request).cp.repository()
    try:
        changes = settings_changes(form)
        try:
            org = await update_settings(repo, viewer_of(request).org.id, changes,
                                        settings=dashboard_of(request).cp.settings)
        except ValueError as exc:  # names the entry by position, never its text
            raise FormRefused(f"check these fields: {TOOL_ALLOWED_DESTINATIONS.replace('_', ' ')}",
                              fields={TOOL_ALLOWED_DESTINATIONS: str(exc)}) from None
    except FormRefused as exc:
        return await _settings_page(request, refused=exc, submitted=form, status=exc.status)
    if org is None:
        raise ApiError(404, "not_found", "no such organisation")
    raise web.HTTPSeeOther("/dashboard/organisation?notice=settings_saved")
