"""Who is looking at the dashboard: sign-in with an API key, the session cookie, CSRF.

Every dashboard request passes :func:`gate`: pages need a live session whose API key is
still active (revoking the key ends its sessions); every POST needs the session's CSRF
token in its form. The sign-in form, which has no session yet, uses a double-submit
token (a cookie and a hidden field that must match), so another site cannot sign a
browser into the attacker's organisation.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from ..auth import authenticate
from ..errors import ApiError
from ..store import Organisation
from .sessions import DashboardSession, DashboardSessionStore, new_csrf_token

if TYPE_CHECKING:
    from ..services import ControlPlane
    from .settings import DashboardSettings

SESSION_COOKIE = "callagent_dashboard"
SIGNIN_COOKIE = "callagent_dashboard_signin"
CSRF_FIELD = "csrf_token"
MAX_KEY_CHARS = 200


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in organisation and its session, put on every authenticated request."""

    org: Organisation
    session: DashboardSession
    session_id: str


VIEWER = web.RequestKey("callagent.dashboard.viewer", Viewer)


class SignInFailed(Exception):
    """The key was missing, malformed, unknown or revoked (one message for all: no oracle)."""


def is_https(request: web.Request, settings: DashboardSettings) -> bool:
    if request.secure:
        return True
    if settings.trust_forwarded_proto:
        proto = request.headers.get("X-Forwarded-Proto", "")
        return proto.split(",")[0].strip().lower() == "https"
    return False


def _secure(request: web.Request, settings: DashboardSettings) -> bool:
    if settings.secure_cookie == "always":
        return True
    if settings.secure_cookie == "never":
        return False
    return is_https(request, settings)


def set_cookie(response: web.StreamResponse, request: web.Request, settings: DashboardSettings, name: str,
               value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/dashboard", httponly=True, samesite="Lax",
                        secure=_secure(request, settings))


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path="/dashboard")


def same_token(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def signin_token(request: web.Request) -> str:
    """The sign-in form's double-submit token: the cookie's, or a fresh one."""
    token = request.cookies.get(SIGNIN_COOKIE, "")
    return token if 20 <= len(token) <= 100 else secrets.token_urlsafe(24)


async def sign_in(cp: ControlPlane, store: DashboardSessionStore, settings: DashboardSettings,
                  api_key: str) -> tuple[str, DashboardSession]:
    key = api_key.strip()
    if not key or len(key) > MAX_KEY_CHARS:
        raise SignInFailed
    repo = await cp.repository()
    try:
        org, record = await authenticate(repo, f"Bearer {key}")
    except ApiError:
        raise SignInFailed from None
    session = DashboardSession(org_id=org.id, api_key_id=record.id, api_key_prefix=record.prefix,
                               csrf_token=new_csrf_token(), expires_at=time.time() + settings.session_ttl_s)
    return await store.create(session), session


async def current_viewer(cp: ControlPlane, store: DashboardSessionStore, session_id: str | None) -> Viewer | None:
    """The request's viewer, or ``None``: no cookie, unknown or expired session, key revoked."""
    if not session_id or len(session_id) > 100:
        return None
    session = await store.get(session_id)
    if session is None:
        return None
    repo = await cp.repository()
    key = await repo.find_api_key(session.api_key_prefix)
    if key is None or key.id != session.api_key_id or key.revoked_at is not None or key.org_id != session.org_id:
        await store.delete(session_id)
        return None
    org = await repo.get_organisation(session.org_id)
    if org is None:
        await store.delete(session_id)
        return None
    return Viewer(org=org, session=session, session_id=session_id)
