"""Campaign REST handlers (mounted from the endpoint table in :mod:`control_plane.api.routes`).

Same rules as the calls API: the organisation comes from the Bearer key and scopes every
query (another organisation's campaign is a 404), bodies are validated before anything is
written, errors are ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from aiohttp import web

from ..agents import check_agent, org_tool_destinations
from ..api.schemas import agent_overrides
from ..auth import ORG
from ..context import control_plane
from ..errors import ApiError, body_chunks, json_response, read_json
from ..store import Organisation
from .contacts import Importer, import_csv, import_json
from .models import CampaignList, CampaignOut, CampaignSummary, ContactsUpload, CostOut, CreateCampaignRequest
from .store import CampaignError, CampaignStore, DialCampaign

_CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})
_ERROR_STATUS = {"not_found": 404, "invalid_state": 409, "no_contacts": 409, "not_dialable": 409}


def _org(request: web.Request) -> Organisation:
    return request[ORG]


async def _store(request: web.Request) -> CampaignStore:
    return await control_plane(request).campaigns.store()


def _campaign_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["campaign_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such campaign") from None


def _error(exc: CampaignError) -> ApiError:
    details = {"status": exc.status} if exc.status else None
    return ApiError(_ERROR_STATUS.get(exc.code, 409), exc.code, exc.message, details)


async def _found(store: CampaignStore, org: Organisation, campaign_id: UUID) -> DialCampaign:
    campaign = await store.get(org.id, campaign_id)
    if campaign is None:
        raise ApiError(404, "not_found", "no such campaign")
    return campaign


async def campaign_out(store: CampaignStore, campaign: DialCampaign, currency: str) -> CampaignOut:
    figures = await store.stats(campaign)
    counts = figures["counts"]
    config = campaign.config
    if config is not None and config.cost_rates is not None:
        currency = config.cost_rates.currency
    return CampaignOut(
        id=campaign.id, name=campaign.name, status=campaign.status,  # type: ignore[arg-type]
        created_at=campaign.created_at, updated_at=campaign.updated_at, started_at=campaign.started_at,
        finished_at=campaign.finished_at, total_contacts=figures["total"],
        pending=counts.get("pending", 0), outside_window=counts.get("outside_window", 0),
        retry_scheduled=counts.get("retry_scheduled", 0),
        in_progress=sum(counts.get(s, 0) for s in ("claimed", "dialing", "in_progress")),
        completed_calls=counts.get("completed", 0), successful_calls=figures["successful"],
        failed=counts.get("failed", 0), dnc_skipped=counts.get("dnc_skipped", 0),
        cancelled=counts.get("cancelled", 0), erased=counts.get("erased", 0),
        calls_placed=figures["calls_placed"], live_calls=figures["live_calls"],
        average_turn_latency_ms=figures["average_turn_latency_ms"],
        cost=CostOut(amount=str(figures["cost"]), currency=currency), config=config,
        agent_config=campaign.agent_config,
    )


async def create_campaign(request: web.Request) -> web.Response:
    cp = control_plane(request)
    body = await read_json(request, CreateCampaignRequest)
    overrides = agent_overrides(body.agent_config)
    check_agent(cp.settings, overrides, org_tool_destinations(_org(request)))
    store = await _store(request)
    campaign = await store.create_campaign(_org(request).id, body.name, overrides, body.config())
    return json_response(await campaign_out(store, campaign, cp.settings.campaign_currency), status=201)


async def list_campaigns(request: web.Request) -> web.Response:
    store = await _store(request)
    campaigns = await store.list(_org(request).id)
    return json_response(CampaignList(data=[
        CampaignSummary(id=c.id, name=c.name, status=c.status, created_at=c.created_at,  # type: ignore[arg-type]
                        updated_at=c.updated_at) for c in campaigns]))


async def get_campaign(request: web.Request) -> web.Response:
    cp = control_plane(request)
    store = await _store(request)
    campaign = await _found(store, _org(request), _campaign_id(request))
    return json_response(await campaign_out(store, campaign, cp.settings.campaign_currency))


async def _chunks(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    read = 0
    async for chunk in body_chunks(request, 64 * 1024):
        read += len(chunk)
        if read > limit:
            raise ApiError(413, "payload_too_large", f"contacts uploads are limited to {limit} bytes; split the file")
        yield chunk


async def upload_contacts(request: web.Request) -> web.Response:
    """``text/csv`` (streamed, batched) or ``application/json`` ``{"contacts": [...]}``."""
    cp = control_plane(request)
    settings = cp.settings.campaigns
    org = _org(request)
    store = await _store(request)
    campaign = await _found(store, org, _campaign_id(request))
    if campaign.status in ("completed", "cancelled"):
        raise ApiError(409, "invalid_state", f"the campaign is {campaign.status}", {"status": campaign.status})
    content_type = request.content_type
    json_body = content_type == "application/json" or (content_type.startswith("application/")
                                                       and content_type.endswith("+json"))
    if content_type not in _CSV_TYPES and not json_body:
        raise ApiError(415, "unsupported_media_type", "send contacts as text/csv or application/json",
                       {"content_type": content_type})
    importer = Importer(store=store, org_id=org.id, campaign_id=campaign.id, batch_size=settings.import_batch_size,
                        max_listed=settings.max_rejected_listed, max_rows=settings.max_upload_rows)
    try:
        if json_body:
            body = await read_json(request, ContactsUpload)
            if len(body.contacts) > settings.max_json_contacts:
                raise ApiError(413, "too_many_rows", f"at most {settings.max_json_contacts} contacts per JSON "
                               "upload; send larger lists as text/csv")
            await import_json(importer, body.contacts)
        else:
            await import_csv(importer, _chunks(request, settings.max_upload_bytes))
        report = await importer.report()
    except Importer.TooManyRows:
        raise ApiError(413, "too_many_rows", f"at most {settings.max_upload_rows} rows per upload; split the file",
                       {"accepted_before_stop": importer.accepted}) from None
    except CampaignError as exc:
        raise _error(exc) from None
    if campaign.status == "running":
        cp.campaigns.notify()
    return json_response(report)


async def transition(cp, org: Organisation, campaign_id: UUID, action: str) -> DialCampaign:  # type: ignore[no-untyped-def]
    """Start, pause, resume or cancel the organisation's campaign (the API and the dashboard)."""
    store = await cp.campaigns.store()
    if action in ("start", "resume"):
        await _found(store, org, campaign_id)
        _check_dialable(cp)
    try:
        campaign = await store.transition(org.id, campaign_id, action)
    except CampaignError as exc:
        raise _error(exc) from None
    cp.campaigns.notify()
    return campaign


async def _transition(request: web.Request, action: str) -> web.Response:
    cp = control_plane(request)
    campaign = await transition(cp, _org(request), _campaign_id(request), action)
    store = await _store(request)
    return json_response(await campaign_out(store, campaign, cp.settings.campaign_currency))


def _check_dialable(cp) -> None:  # type: ignore[no-untyped-def]
    """Starting is refused up front (503) when the server cannot place calls at all."""
    if not cp.settings.telnyx_connection_id:
        raise ApiError(503, "not_configured", "Telnyx is not configured (set TELNYX_CONNECTION_ID)")
    cp.telnyx_client()
    cp.stream_url()
    cp.webhook_url()


async def start_campaign(request: web.Request) -> web.Response:
    return await _transition(request, "start")


async def pause_campaign(request: web.Request) -> web.Response:
    return await _transition(request, "pause")


async def resume_campaign(request: web.Request) -> web.Response:
    return await _transition(request, "resume")


async def cancel_campaign(request: web.Request) -> web.Response:
    return await _transition(request, "cancel")
