"""Sign-in and the call pages. Each reads the viewer's organisation from the request and passes
it to every query, exactly as the REST handlers do: another organisation's call is a 404."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from aiohttp import web

from ..api.handlers import decode_cursor, encode_cursor
from ..calls import CallService
from ..errors import ApiError
from ..store import CALL_STATUSES, utcnow
from .auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    SignInFailed,
    clear_cookie,
    same_token,
    set_cookie,
    sign_in,
    signin_token,
)
from .live import HEARTBEAT_S, SSE_HEARTBEAT, LiveFeed, sse_event
from .pages import dashboard_of, form_field, page, viewer_of
from .waterfall import STAGES, WIDTH, waterfalls

DIRECTIONS = ("outbound", "inbound")
SIGNIN_WINDOW_S = 60.0
SESSION_RECHECK_S = 10.0
"""How often an open live stream checks its session still stands (signed out, expired, key revoked)."""


# -- sign-in -------------------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/dashboard/calls")


def _signin_page(request: web.Request, error: str | None, status: int = 200) -> web.Response:
    dash = dashboard_of(request)
    token = signin_token(request)
    response = page(request, "signin.html", {"signin_token": token, "error": error}, status=status)
    set_cookie(response, request, dash.settings, SIGNIN_COOKIE, token, max_age=3600)
    return response


async def signin_form(request: web.Request) -> web.Response:
    return _signin_page(request, None)


async def signin(request: web.Request) -> web.Response:
    dash = dashboard_of(request)
    # Keys cannot be guessed, but every attempt costs a lookup: bound them per client address.
    decision = await dash.cp.rate_limiter.hit(f"dashboard_signin:{request.remote}",
                                              dash.settings.signin_attempts_per_minute, SIGNIN_WINDOW_S)
    if not decision.allowed:
        response = _signin_page(request, "Too many sign-in attempts; wait a minute and try again.", status=429)
        response.headers["Retry-After"] = decision.retry_after_header
        return response
    form = await request.post()
    if not same_token(form_field(form, CSRF_FIELD), request.cookies.get(SIGNIN_COOKIE)):
        return _signin_page(request, "The form expired; please try again.", status=403)
    try:
        session_id, _ = await sign_in(dash.cp, dash.sessions(), dash.settings, form_field(form, "api_key") or "")
    except SignInFailed:
        return _signin_page(request, "That API key is not valid, or it was revoked.", status=401)
    response = web.HTTPSeeOther("/dashboard/calls")
    set_cookie(response, request, dash.settings, SESSION_COOKIE, session_id, max_age=dash.settings.session_ttl_s)
    clear_cookie(response, SIGNIN_COOKIE)
    raise response


async def signout(request: web.Request) -> web.Response:
    await dashboard_of(request).sessions().delete(viewer_of(request).session_id)
    response = web.HTTPSeeOther("/dashboard/signin?notice=signed_out")
    clear_cookie(response, SESSION_COOKIE)
    raise response


# -- calls -----------------------------------------------------------------------------------------


class FilterError(ValueError):
    pass


def _date(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{name} must be a date (YYYY-MM-DD)") from None


def parse_filters(query: Any) -> dict[str, Any]:
    """The list's filters from the query string; a bad value is a :class:`FilterError` naming the field."""
    status = query.get("status", "")
    direction = query.get("direction", "")
    if status and status not in CALL_STATUSES:
        raise FilterError("status must be one of " + ", ".join(CALL_STATUSES))
    if direction and direction not in DIRECTIONS:
        raise FilterError("direction must be outbound or inbound")
    since, until = _date(query.get("from", ""), "from"), _date(query.get("to", ""), "to")
    return {"status": status or None, "direction": direction or None, "from": since, "to": until}


async def calls(request: web.Request) -> web.Response:
    dash, viewer = dashboard_of(request), viewer_of(request)
    try:
        filters = parse_filters(request.query)
        after = _cursor(request.query.get("cursor", ""))
    except FilterError as exc:
        return page(request, "calls.html", {"filters": {}, "error": str(exc), "calls": [], **_choices()}, status=400)
    since = datetime.combine(filters["from"], time(), UTC) if filters["from"] else None
    until = datetime.combine(filters["to"] + timedelta(days=1), time(), UTC) if filters["to"] else None
    repo = await dash.cp.repository()
    result = await repo.list_calls(viewer.org.id, status=filters["status"], direction=filters["direction"],
                                  since=since, until=until, limit=dash.settings.page_size, after=after)
    kept = {k: v for k, v in {"status": filters["status"], "direction": filters["direction"],
                              "from": filters["from"] and filters["from"].isoformat(),
                              "to": filters["to"] and filters["to"].isoformat()}.items() if v}
    next_query = {**kept, "cursor": encode_cursor(*result.next_cursor)} if result.next_cursor else None
    now = utcnow()
    return page(request, "calls.html", {
        "filters": kept, "calls": [_list_row(c, now) for c in result.calls], "next_query": next_query,
        "first_page": after is not None, "error": None, **_choices(),
    })


def _cursor(cursor: str) -> tuple[datetime, UUID] | None:
    """The keyset position of an "Older" link (the API's cursor), or ``None`` for the newest page."""
    if not cursor:
        return None
    try:
        if len(cursor) > 512:
            raise ApiError(400, "invalid_cursor", "too long")
        return decode_cursor(cursor)
    except ApiError:
        raise FilterError("the page link is not valid; start from the newest calls") from None


def _choices() -> dict[str, Any]:
    return {"statuses": CALL_STATUSES, "directions": DIRECTIONS}


def _list_row(call: Any, now: datetime) -> dict[str, Any]:
    duration = None
    if call.answered_at is not None:
        duration = max(0.0, ((call.ended_at or now) - call.answered_at).total_seconds())
    return {"id": call.id, "created_at": call.created_at, "direction": call.direction,
            "number": (call.to_number if call.direction == "outbound" else call.from_number),
            "status": call.status, "duration_s": duration, "terminal": call.terminal,
            "cost": call.cost_amount, "currency": call.cost_currency}


def _call_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["call_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such call") from None


async def call_detail(request: web.Request) -> web.Response:
    dash, viewer = dashboard_of(request), viewer_of(request)
    call_id = _call_id(request)
    repo = await dash.cp.repository()
    call = await repo.get_call(viewer.org.id, call_id)
    if call is None:
        raise ApiError(404, "not_found", "no such call")
    turns = await repo.list_turns(call.id)
    events = await repo.list_call_events(call.id)
    falls = waterfalls([t.latency for t in turns])
    recording = call.recording_url if call.recording_url and call.recording_url.startswith("https://") else None
    return page(request, "call.html", {
        "call": call, "row": _list_row(call, utcnow()), "turns": list(zip(turns, falls, strict=True)),
        "events": events, "recording_url": recording, "stages": STAGES, "width": WIDTH,
        "outcome": sorted((call.outcome or {}).items()),
    })


async def hangup(request: web.Request) -> web.Response:
    dash, viewer = dashboard_of(request), viewer_of(request)
    call = await CallService(dash.cp).hangup(viewer.org, _call_id(request))  # 404 for another org's call
    back = request.query.get("back", "")
    target = f"/dashboard/calls/{call.id}" if back == "detail" else "/dashboard/calls"
    raise web.HTTPSeeOther(f"{target}?notice={'ended' if call.terminal else 'hangup'}")


# -- live calls ------------------------------------------------------------------------------------


async def live_stream(request: web.Request) -> web.StreamResponse:
    """``text/event-stream`` of ``calls`` events (see :mod:`.live`) until the client goes away,
    the session ends, or the server drains or stops: an open tab must not hold a shutdown up
    (the browser reconnects, through the load balancer, to an instance that stays)."""
    dash, viewer = dashboard_of(request), viewer_of(request)
    feed = LiveFeed(viewer.org.id, dash.settings.max_live_calls)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    interval = dash.settings.live_interval_s
    quiet = 0.0
    checked = 0.0
    try:
        while not dash.stopping:
            repo = await dash.cp.repository()
            payload = await feed.poll(repo, utcnow())
            if payload is not None:
                await response.write(sse_event("calls", payload))
                quiet = 0.0
            elif quiet >= HEARTBEAT_S:
                await response.write(SSE_HEARTBEAT)
                quiet = 0.0
            await dash.pause(interval)
            quiet += interval
            checked += interval
            if checked >= SESSION_RECHECK_S:
                checked = 0.0
                if await dash.viewer(request.cookies.get(SESSION_COOKIE)) is None:  # signed out, expired or key revoked
                    await response.write(sse_event("signed_out", {}))
                    break
    except ConnectionResetError:
        pass  # the browser went away (tab closed, page left)
    return response
