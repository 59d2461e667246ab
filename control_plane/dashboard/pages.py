"""What every dashboard page shares: the viewer, the control plane, rendering with the
common context (viewer, CSRF token, a notice chosen by key so no text is taken from the URL)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from .auth import VIEWER, Viewer
from .context import DASHBOARD, Dashboard

NOTICES = {
    "hangup": "Hang-up requested.",
    "ended": "That call had already ended.",
    "signed_out": "Signed out.",
    "expired": "Your session ended; sign in again.",
    "key_revoked": "API key revoked.",
    "number_added": "Number added: inbound calls to it are answered.",
    "number_updated": "Number updated: new calls to it get the new agent.",
    "number_removed": "Number removed: calls to it are now rejected.",
    "dnc_added": "Added to the do-not-call list.",
    "dnc_already": "That number was already on the do-not-call list.",
    "dnc_removed": "Removed from the do-not-call list.",
    "dnc_absent": "That number was not on the do-not-call list.",
    "settings_saved": "Organisation settings saved.",
    "campaign_start": "Campaign started.",
    "campaign_pause": "Campaign paused: live calls finish, no new dials.",
    "campaign_resume": "Campaign resumed.",
    "campaign_cancel": "Campaign cancelled: contacts not yet dialled will not be.",
    "webhook_replayed": "Event queued again (same webhook-id).",
    "kb_created": "Knowledge base created: upload its documents below.",
    "kb_deleted": "Knowledge base deleted, with all its documents.",
    "document_removed": "Document removed, with all its passages.",
    "webhook_pending": "That event is already waiting to be delivered; it was not queued twice.",
}


def dashboard_of(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD]


def viewer_of(request: web.Request) -> Viewer:
    return request[VIEWER]


def page(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    viewer = request.get(VIEWER)
    base = {"viewer": viewer, "csrf_token": viewer.session.csrf_token if viewer else None,
            "notice": NOTICES.get(request.query.get("notice", ""))}
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def form_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None
