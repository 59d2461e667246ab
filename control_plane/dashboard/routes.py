"""The dashboard as an aiohttp sub-application: routes, templates, the gate, security headers.

``control_plane.app`` mounts it with ``app.add_subapp("/dashboard", dashboard_app(cp))``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp_jinja2
import jinja2
import orjson
from aiohttp import web

from ..errors import ApiError, Handler
from . import admin_views, campaign_views, knowledge_views, latency_views, number_views, org_views, views, webhook_views
from .auth import CSRF_FIELD, SESSION_COOKIE, VIEWER, clear_cookie, same_token
from .context import DASHBOARD, Dashboard
from .pages import page

if TYPE_CHECKING:
    from ..services import ControlPlane

HERE = Path(__file__).parent
PUBLIC_ROUTES = frozenset({"signin_form", "signin", "static"})
STREAMED_FORMS = frozenset({"create_campaign", "upload_documents"})
"""POSTs whose handler streams the body and checks the CSRF token itself (a file upload)."""
SECURITY_HEADERS = {
    # No inline script or style anywhere: an injected tag could not run even if escaping failed.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sign-in before any page, the CSRF token on every POST, errors as pages."""
    dash = request.app[DASHBOARD]
    try:
        if request.match_info.route.name not in PUBLIC_ROUTES:
            cookie = request.cookies.get(SESSION_COOKIE)
            viewer = await dash.viewer(cookie)
            if viewer is None:
                target = "/dashboard/signin" + ("?notice=expired" if cookie else "")
                if request.method == "GET":
                    response = web.HTTPSeeOther(target)
                    if cookie:
                        clear_cookie(response, SESSION_COOKIE)
                    raise response
                raise ApiError(401, "unauthorized", "Your session ended; sign in again.")
            request[VIEWER] = viewer
            if request.method == "POST" and request.match_info.route.name not in STREAMED_FORMS:
                form = await request.post()
                token = form.get(CSRF_FIELD)
                if not same_token(token if isinstance(token, str) else None, viewer.session.csrf_token):
                    raise ApiError(403, "csrf", "This form is out of date or did not come from the dashboard; "
                                                "reload the page and try again.")
        return await handler(request)
    except ApiError as exc:
        return page(request, "error.html", {"status": exc.status, "message": exc.message}, status=exc.status)
    except web.HTTPNotFound:
        return page(request, "error.html", {"status": 404, "message": "No such page."}, status=404)
    except web.HTTPMethodNotAllowed:
        return page(request, "error.html", {"status": 405, "message": "Not allowed."}, status=405)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/dashboard"):
        response.headers.update(SECURITY_HEADERS)
        if not request.path.startswith("/dashboard/static/"):
            response.headers["Cache-Control"] = "no-store"  # pages hold personal data


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    total = int(seconds)
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}" if total >= 3600 else \
        f"{total // 60}:{total % 60:02d}"


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _plain(value: object) -> str:
    """An outcome value as JSON writes it (true, not Python's True); strings as they are."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _money(amount: Decimal | None, currency: str | None) -> str:
    return "–" if amount is None else f"{amount} {currency or ''}".strip()


def dashboard_app(cp: ControlPlane) -> web.Application:
    app = web.Application(middlewares=[gate])
    app[DASHBOARD] = dashboard = Dashboard(cp)
    app.on_shutdown.append(dashboard.close)
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    env.filters.update(duration=_duration, when=_when, ms=_ms, plain=_plain)
    env.globals.update(money=_money, csrf_field=CSRF_FIELD)
    router = app.router
    router.add_get("/", views.index, name="index")
    router.add_get("/signin", views.signin_form, name="signin_form")
    router.add_post("/signin", views.signin, name="signin")
    router.add_post("/signout", views.signout, name="signout")
    router.add_get("/calls", views.calls, name="calls")
    router.add_get("/calls/live", views.live_stream, name="live")
    router.add_get("/calls/{call_id}", views.call_detail, name="call")
    router.add_post("/calls/{call_id}/hangup", views.hangup, name="hangup")
    router.add_get("/keys", admin_views.keys, name="keys")
    router.add_post("/keys", admin_views.create_key, name="create_key")
    router.add_post("/keys/{key_id}/revoke", admin_views.revoke_key, name="revoke_key")
    router.add_get("/numbers", number_views.numbers, name="numbers")
    router.add_post("/numbers", number_views.add_number, name="add_number")
    router.add_post("/numbers/remove", number_views.remove_number, name="remove_number")
    router.add_get("/numbers/{phone}", number_views.number_detail, name="number")
    router.add_post("/numbers/{phone}", number_views.update_number, name="update_number")
    router.add_get("/dnc", admin_views.dnc, name="dnc")
    router.add_post("/dnc", admin_views.dnc_add, name="dnc_add")
    router.add_post("/dnc/check", admin_views.dnc_check, name="dnc_check")
    router.add_post("/dnc/remove", admin_views.dnc_remove, name="dnc_remove")
    router.add_get("/organisation", org_views.organisation, name="organisation")
    router.add_post("/organisation", org_views.update_organisation, name="update_organisation")
    router.add_get("/latency", latency_views.latency, name="latency")
    router.add_get("/campaigns", campaign_views.campaigns, name="campaigns")
    router.add_post("/campaigns", campaign_views.create_campaign, name="create_campaign")
    router.add_post("/campaigns/{campaign_id}/{action}", campaign_views.campaign_action, name="campaign_action")
    router.add_get("/knowledge", knowledge_views.knowledge, name="knowledge")
    router.add_post("/knowledge", knowledge_views.create_base, name="create_kb")
    router.add_get("/knowledge/{kb}", knowledge_views.knowledge_base, name="kb")
    router.add_post("/knowledge/{kb}/delete", knowledge_views.delete_base, name="delete_kb")
    router.add_post("/knowledge/{kb}/documents", knowledge_views.upload_documents, name="upload_documents")
    router.add_post("/knowledge/{kb}/documents/remove", knowledge_views.remove_document, name="remove_document")
    router.add_get("/webhooks", webhook_views.webhooks, name="webhooks")
    router.add_post("/webhooks/replay", webhook_views.replay, name="webhook_replay")
    router.add_static("/static", HERE / "static", name="static")
    app.on_response_prepare.append(_security_headers)
    return app
