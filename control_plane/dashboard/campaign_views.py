"""The campaigns page: each campaign's progress, pace, outcomes and cost, with the actions its
state allows, and a form that creates one from a contacts CSV. Figures come from
:func:`campaigns.api.campaign_out`, actions go through :func:`campaigns.api.transition`, and
creation through the API's request model and contacts importer, so every rule is the API's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from aiohttp import BodyPartReader, web
from pydantic import ValidationError

from ..agents import check_agent, org_tool_destinations
from ..api.schemas import agent_overrides
from ..campaigns.api import campaign_out, transition
from ..campaigns.contacts import Importer, import_csv
from ..campaigns.models import CreateCampaignRequest
from ..campaigns.timezones import DAYS
from ..errors import ApiError
from ..telnyx.client import SPEAK_LANGUAGES
from .auth import CSRF_FIELD, same_token
from .forms import AGENT_TEXT_FIELDS, FormData, FormRefused, agent_config, agent_error_field, kept, label, refusal
from .knowledge_views import base_choices, check_bases
from .pages import dashboard_of, page, viewer_of

ACTIONS: dict[str, tuple[str, ...]] = {"draft": ("start", "cancel"), "running": ("pause", "cancel"),
                                       "paused": ("resume", "cancel")}
"""What each campaign state offers (the store's transitions)."""
LISTED = 100


async def _campaigns_page(request: web.Request, *, refused: FormRefused | None = None,
                          submitted: FormData | None = None, created: dict[str, Any] | None = None,
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
    values = kept(submitted, refused, {name: name for name in KEPT})
    ticked = {name: (submitted.all(name) if submitted is not None and submitted.has(name) and name not in
                     (refused.fields if refused else {}) else None) for name in ("retry_on", "window_days")}
    if submitted is not None and submitted.has("answering_machine_detection"):
        values["answering_machine_detection"] = submitted.get("answering_machine_detection")
    return page(request, "campaigns.html", {
        "campaigns": rows, "created": created, "error": str(refused) if refused else None,
        "field_errors": refused.fields if refused else {}, "values": values,
        "retry_on": ticked["retry_on"] if ticked["retry_on"] is not None else ["busy", "no_answer", "failed"],
        "window_days": ticked["window_days"] if ticked["window_days"] is not None else list(DAYS),
        "retry_outcomes": RETRY_OUTCOMES, "days": DAYS, "zones": ZONES,
        "speak_languages": sorted(SPEAK_LANGUAGES), "bases": await base_choices(request),
        "picked_bases": submitted.all("knowledge_bases") if submitted is not None else [],
    }, status=status)


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
        return await _campaigns_page(request, refused=FormRefused(exc.message), status=exc.status)  # 409, 503
    raise web.HTTPSeeOther(f"/dashboard/campaigns?notice=campaign_{action}")


# -- creating a campaign from a CSV ------------------------------------------------------------------

FIELD_LIMIT = 24_000
"""Longest text field of the create form (a prompt may be 20,000 characters); the CSV part is
streamed, never held whole."""
MAX_PARTS = 100
CSV_CHUNK = 64 * 1024
RETRY_OUTCOMES = ("busy", "no_answer", "failed", "machine")
ZONES = ("UTC", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
         "America/Toronto", "America/Sao_Paulo", "Europe/London", "Europe/Paris", "Europe/Berlin",
         "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney")
"""Suggested in the time zone field; any IANA name is accepted."""
ERROR_FIELDS: dict[tuple[str, ...], str] = {
    ("window", "start"): "window_start", ("window", "end"): "window_end", ("window", "days"): "window_days",
    ("window", "timezone"): "window_timezone", ("window",): "window_start",
    ("retry", "on"): "retry_on", ("retry", "max_attempts"): "retry_max_attempts",
    ("retry", "backoff_s"): "retry_backoff_min", ("retry", "backoff_multiplier"): "retry_backoff_multiplier",
    ("voicemail", "action"): "voicemail_action", ("voicemail", "message"): "voicemail_message",
    ("voicemail", "voice"): "voicemail_voice", ("voicemail", "language"): "voicemail_language",
    ("voicemail",): "voicemail_message",
    **{("agent_config", name): name for name in AGENT_TEXT_FIELDS},
    ("agent_config", "knowledge_bases"): "knowledge_bases",
}
"""Where in the API's body an error is -> the form field it came from."""
KEPT = ("name", *AGENT_TEXT_FIELDS, "caller_numbers", "calls_per_minute", "max_concurrent_calls",
        "max_calls_per_number", "ring_timeout_s", "window_start", "window_end", "window_timezone",
        "retry_max_attempts", "retry_backoff_min", "retry_backoff_multiplier", "voicemail_action",
        "voicemail_message", "voicemail_voice", "voicemail_language")


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


def _number(form: FormData, name: str, default: Any, kind: type = int, scale: float = 1) -> Any:
    raw = form.get(name)
    if not raw:
        return default
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw) if len(raw) <= 12 else None
    except ValueError:
        value = None
    if value is None or value != value or value in (float("inf"), float("-inf")):  # NaN, inf: not numbers here
        raise FormRefused(f"{label(name)} must be {what}", fields={name: f"must be {what}"})
    return value * scale if scale != 1 else value


def _choices(form: FormData, name: str, default: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """Checkboxes: the ticked values; the form sends an empty hidden value first, so a form with
    none ticked is told from a body without the field (the API's default)."""
    if not form.has(name):
        return list(default)
    picked = form.all(name)
    if any(v not in allowed for v in picked):
        raise FormRefused(f"{label(name)}: choose from the options", fields={name: "choose from the options"})
    return [v for v in allowed if v in picked]


def create_request(form: FormData) -> CreateCampaignRequest:
    """The API's create body from the form's fields (so the same limits and checks apply)."""
    numbers = [n for n in form.get("caller_numbers").replace(",", " ").split() if n]
    body: dict[str, Any] = {
        "name": form.get("name"), "caller_numbers": numbers, "agent_config": agent_config(form),
        "calls_per_minute": _number(form, "calls_per_minute", 60),
        "max_concurrent_calls": _number(form, "max_concurrent_calls", 10),
        "max_calls_per_number": _number(form, "max_calls_per_number", None),
        "ring_timeout_s": _number(form, "ring_timeout_s", 30),
        "retry": {"on": _choices(form, "retry_on", ("busy", "no_answer", "failed"), RETRY_OUTCOMES),
                  "max_attempts": _number(form, "retry_max_attempts", 3),
                  "backoff_s": _number(form, "retry_backoff_min", 1800.0, float, 60.0),
                  "backoff_multiplier": _number(form, "retry_backoff_multiplier", 1.0, float)},
    }
    if form.has("answering_machine_detection"):  # a hidden "off" then the checkbox's "on"
        body["answering_machine_detection"] = form.get("answering_machine_detection") == "on"
    start, end = form.get("window_start"), form.get("window_end")
    if start or end:
        body["window"] = {"start": start, "end": end, "timezone": form.get("window_timezone") or "UTC",
                          "days": _choices(form, "window_days", DAYS, DAYS)}
    voicemail = {"action": form.get("voicemail_action") or "hangup", "message": form.get("voicemail_message") or None,
                 "language": form.get("voicemail_language") or None}
    if form.get("voicemail_voice"):
        voicemail["voice"] = form.get("voicemail_voice")
    body["voicemail"] = voicemail
    try:
        return CreateCampaignRequest.model_validate(body, strict=False)
    except ValidationError as exc:
        refused = refusal(exc, ERROR_FIELDS)
        if "voicemail_message" in refused.fields:  # the voicemail checks share one location
            text = refused.fields["voicemail_message"]
            for name in ("voicemail_language", "voicemail_voice"):
                if name.removeprefix("voicemail_") in text and "message" not in text:
                    refused.fields[name] = refused.fields.pop("voicemail_message")
                    break
        raise FormRefused(f"check these fields: {', '.join(label(f) for f in refused.fields)}",
                          refused.status, refused.fields) from None


async def create_campaign(request: web.Request) -> web.Response:
    """``multipart/form-data``: the CSRF token and the settings first, the contacts CSV last
    (browsers send parts in the form's order), so the file streams into the importer."""
    dash, viewer = dashboard_of(request), viewer_of(request)
    settings = dash.cp.settings.campaigns
    form: FormData | None = None
    try:
        if request.content_type != "multipart/form-data":
            raise FormRefused("send the form as multipart/form-data", 415)
        reader = await request.multipart()
        pairs: list[tuple[str, str]] = []
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):  # a nested multipart: no browser sends one
                raise FormRefused("send each form field as a plain part, not a nested multipart")
            if part.name == "contacts":
                break
            if len(pairs) >= MAX_PARTS:
                raise FormRefused("too many form fields")
            pairs.append((str(part.name or "")[:40], await _text_part(part)))
        form = FormData(pairs)
        if part is None:
            raise FormRefused("choose a contacts CSV file", fields={"contacts": "choose a CSV file"})
        if not same_token(form.get(CSRF_FIELD) or None, viewer.session.csrf_token):
            raise ApiError(403, "csrf", "This form is out of date or did not come from the dashboard; "
                                        "reload the page and try again.")
        body = create_request(form)
        await check_bases(request, {"knowledge_bases": form.all("knowledge_bases")})
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
        return await _campaigns_page(request, refused=exc, submitted=form, status=exc.status)
    except ApiError as exc:
        if exc.status == 403:
            raise
        refused = FormRefused(exc.message, exc.status, agent_error_field(exc.message))
        return await _campaigns_page(request, refused=refused, submitted=form, status=exc.status)
    return await _campaigns_page(request, created={"name": campaign.name, "report": report}, status=201)

