"""The campaigns page: each campaign's progress, pace, outcomes and cost, with the actions its
state allows. Figures come from :func:`campaigns.api.campaign_out` and actions go through
:func:`campaigns.api.transition`, exactly as ``GET/POST /api/campaigns/...``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from ..campaigns.api import campaign_out, transition
from ..errors import ApiError
from .pages import dashboard_of, page, viewer_of

ACTIONS: dict[str, tuple[str, ...]] = {"draft": ("start", "cancel"), "running": ("pause", "cancel"),
                                       "paused": ("resume", "cancel")}
"""What each campaign state offers (the store's transitions)."""
LISTED = 100


async def _campaigns_page(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    dash, viewer = dashboard_of(request), viewer_of(request)
    store = await dash.cp.campaigns.store()
    currency = dash.cp.settings.campaigns.cost_rates.currency
    rows: list[dict[str, Any]] = []
    for listed in await store.list(viewer.org.id, limit=LISTED):
        campaign = await store.get(viewer.org.id, listed.id) or listed  # with its dialer config (pace)
        out = await campaign_out(store, campaign, currency)
        done = out.completed_calls + out.failed + out.dnc_skipped + out.cancelled + out.erased
        rows.append({"c": out, "done": done, "actions": ACTIONS.get(out.status, ())})
    return page(request, "campaigns.html", {"campaigns": rows, "error": error}, status=status)


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
