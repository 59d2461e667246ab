"""The webhooks page: the organisation's endpoints and its recent deliveries with their attempts,
and a replay button per event (the same store calls as ``/api/webhooks``). Endpoints are
created, changed and rotated through the API (the secret is shown there once)."""

from __future__ import annotations

from aiohttp import web

from ..errors import ApiError
from ..store.records import utcnow
from ..webhooks.models import masked_url
from .pages import dashboard_of, form_field, page, viewer_of

PAGE_SIZE = 100


async def webhooks(request: web.Request) -> web.Response:
    cp = dashboard_of(request).cp
    await cp.repository()
    store = cp.outbound_webhooks.store
    if store is None:
        raise ApiError(503, "not_configured", "Webhooks need one of the SQL stores.")
    org_id = viewer_of(request).org.id
    state = request.query.get("state")
    endpoints = await store.list_endpoints(org_id)
    deliveries = await store.list_deliveries(org_id, state=state if state in ("pending", "delivered", "failed")
                                             else None, limit=PAGE_SIZE)
    urls = {e.id: masked_url(e.url) for e in endpoints}
    return page(request, "webhooks.html", {"endpoints": endpoints, "deliveries": deliveries, "urls": urls,
                                           "state": state})


async def replay(request: web.Request) -> web.Response:
    form = await request.post()
    message_id = (form_field(form, "message_id") or "").strip()
    cp = dashboard_of(request).cp
    await cp.repository()
    store = cp.outbound_webhooks.store
    if store is None or not message_id or len(message_id) > 100:
        raise ApiError(404, "not_found", "No such event.")
    replayed = await store.replay(viewer_of(request).org.id, now=utcnow(),
                                  max_age_s=cp.settings.outbound_webhooks.max_age_s, message_id=message_id)
    if not replayed.found:
        raise ApiError(404, "not_found", "No such event.")
    if not replayed.queued:
        raise web.HTTPSeeOther("/dashboard/webhooks?notice=webhook_pending")
    cp.outbound_webhooks.wake()
    raise web.HTTPSeeOther("/dashboard/webhooks?notice=webhook_replayed")
