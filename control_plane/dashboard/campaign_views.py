"""The campaigns page: each campaign's progress, pace, outcomes and cost, with the actions its
state allows, and a form that creates one from a contacts CSV. Figures come from
:func:`campaigns.api.campaign_out`, actions go through :func:`campaigns.api.transition`, and
creation through the API's request model and contacts importer, so every rule is the API's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import ValidationError

from ..agents import check_agent, org_tool_destinations
from ..api.schemas import agent_overrides
from ..campaigns.api import campaign_out, transition
from ..campaigns.contacts import Importer, import_csv
from ..campaigns.models import CreateCampaignRequest
from ..errors import ApiError
from .auth import CSRF_FIELD, same_token
from .pages import dashboard_of, page, viewer_of

ACTIONS: dict[str, tuple[str, ...]] = {"draft": ("start", "cancel"), "running": ("pause", "cancel"),
                                       "paused": ("resume", "cancel")}
"""What each campaign state offers (the store's transitions)."""
LISTED = 100


async def _campaigns_page(request: web.Request, *, error: str | None = None, created: dict[str, Any] | None = None,
                          status: int = 200) -> web.Response:
    dash, viewer = dashboard_of(request), viewer_of(request)
    store = await dash.cp.campaigns.store()
    currency = dash.cp.settings.campaign_currency
    rows: list[dict[str, Any]] = []
    for listed in await store.list(viewer.org.id, limit=LISTED):
        campaign = await store.get(viewer.org.id, listed.id) or listed  # with its dialer config (pace)
        out = await campaign_out(store, campaign, currency)
        done = out.completed_calls + out.failed + out.dnc_skipped + out.cancelled + out.erased
        rows.append({"c": out, "done": done, "actions": ACTIONS.get(out.status, ())})
    return page(request, "campaigns.html", {"campaigns": rows, "error": error, "created": created}, status=status)


async def campaigns(request: web.Request) -> web.Response:
    return await _campaigns_page(request)


async def campaign_action(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    try:
        campaign_id = UUID(request.match_info["campaign_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such campaign") from None
    if action not in ("start", "pause", "resume", "cancel"):
        raise ApiError(404, "not_found", "no such action")
    dash, viewer = dashboard_of(request), viewer_of(request)
    try:
        await transition(dash.cp, viewer.org, campaign_id, action)
    except ApiError as exc:
        if exc.status == 404:
            raise
        return await _campaigns_page(request, error=exc.message, status=exc.status)  # 409 state, 503 not set up
    raise web.HTTPSeeOther(f"/dashboard/campaigns?notice=campaign_{action}")


# -- creating a campaign from a CSV ------------------------------------------------------------------

FIELD_LIMIT = 4096
"""Longest text field of the create form; the CSV part is streamed, never held whole."""
CSV_CHUNK = 64 * 1024


class FormRefused(Exception):
    """The create form was not acceptable; the message names the field, never its value."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def _text_part(part: Any) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(1024):
        data += chunk
        if len(data) > FIELD_LIMIT:
            raise FormRefused(f"{part.name or 'a field'} is longer than {FIELD_LIMIT} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise FormRefused(f"{part.name or 'a field'} is not UTF-8 text") from None


def _int(fields: dict[str, str], name: str, default: int) -> int:
    raw = fields.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise FormRefused(f"{name.replace('_', ' ')} must be a whole number")
    return int(raw)


def create_request(fields: dict[str, str]) -> CreateCampaignRequest:
    """The API's create body from the form's fields (so the same limits and checks apply)."""
    numbers = [n for n in fields.get("caller_numbers", "").replace(",", " ").split() if n]
    personality = fields.get("personality", "").strip()
    body = {"name": fields.get("name", "").strip(), "caller_numbers": numbers,
            "agent_config": {"personality": personality} if personality else {},
            "calls_per_minute": _int(fields, "calls_per_minute", 60),
            "max_concurrent_calls": _int(fields, "max_concurrent_calls", 10)}
    try:
        return CreateCampaignRequest.model_validate(body)
    except ValidationError as exc:
        names = sorted({str(err["loc"][0]).replace("_", " ") for err in exc.errors() if err["loc"]})
        raise FormRefused("check these fields: " + ", ".join(names)) from None


async def create_campaign(request: web.Request) -> web.Response:
    """``multipart/form-data``: the CSRF token and the settings first, the contacts CSV last
    (browsers send parts in the form's order), so the file streams into the importer."""
    dash, viewer = dashboard_of(request), viewer_of(request)
    settings = dash.cp.settings.campaigns
    try:
        if request.content_type != "multipart/form-data":
            raise FormRefused("send the form as multipart/form-data", 415)
        reader = await request.multipart()
        fields: dict[str, str] = {}
        while (part := await reader.next()) is not None:
            if getattr(part, "name", None) == "contacts":
                break
            if len(fields) >= 20:
                raise FormRefused("too many form fields")
            fields[str(getattr(part, "name", ""))[:40]] = await _text_part(part)
        else:
            raise FormRefused("choose a contacts CSV file")
        if not same_token(fields.get(CSRF_FIELD), viewer.session.csrf_token):
            raise ApiError(403, "csrf", "This form is out of date or did not come from the dashboard; "
                                        "reload the page and try again.")
        body = create_request(fields)
        overrides = agent_overrides(body.agent_config)
        check_agent(dash.cp.settings, overrides, org_tool_destinations(viewer.org))  # 422: cannot run
        store = await dash.cp.campaigns.store()
        campaign = await store.create_campaign(viewer.org.id, body.name, overrides, body.config())
        importer = Importer(store=store, org_id=viewer.org.id, campaign_id=campaign.id,
                            batch_size=settings.import_batch_size, max_listed=settings.max_rejected_listed,
                            max_rows=settings.max_upload_rows)

        async def chunks() -> AsyncIterator[bytes]:
            read = 0
            while chunk := await part.read_chunk(CSV_CHUNK):  # type: ignore[union-attr]
                read += len(chunk)
                if read > settings.max_upload_bytes:
                    raise FormRefused(f"the CSV is larger than {settings.max_upload_bytes} bytes; the rows "
                                      "before the limit were added", 413)
                yield chunk

        try:
            await import_csv(importer, chunks())
        except Importer.TooManyRows:
            raise FormRefused(f"at most {settings.max_upload_rows} rows per upload; the rows before the limit "
                              "were added", 413) from None
        report = await importer.report()
    except FormRefused as exc:
        return await _campaigns_page(request, error=str(exc), status=exc.status)
    except ApiError as exc:
        if exc.status == 403:
            raise
        return await _campaigns_page(request, error=exc.message, status=exc.status)
    return await _campaigns_page(request, created={"name": campaign.name, "report": report}, status=201)
