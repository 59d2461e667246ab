"""Dashboard access: sign-in with an API key, the session cookie, CSRF, expiry, revocation,
isolation between organisations. Through aiohttp's test client (the browser tests are in
test_browser.py)."""

from __future__ import annotations

import uuid

from control_plane.dashboard.auth import SESSION_COOKIE, SIGNIN_COOKIE
from control_plane.dashboard.sessions import DashboardSession, MemoryDashboardSessions, RedisDashboardSessions
from tests.control_plane.conftest import make_settings
from tests.control_plane.fakes import harness

from .helpers import form_token, secret_of, session_token, sign_in, write_call


def _cookie(response, name: str):  # type: ignore[no-untyped-def]
    return response.cookies.get(name)


async def test_pages_need_a_session(h):
    for path in ("/dashboard/calls", "/dashboard/", f"/dashboard/calls/{uuid.uuid4()}"):
        response = await h.client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/dashboard/signin") or path == "/dashboard/"
    live = await h.client.get("/dashboard/calls/live", allow_redirects=False)
    assert live.status == 303 and live.headers["Location"] == "/dashboard/signin"


async def test_bad_keys_are_refused_with_one_message_and_no_echo(h):
    _, headers = await h.org()
    hostile = "ck_<script>alert(1)</script>"
    for bad in ("", "ck_nope", hostile, "x" * 5000, secret_of(headers) + "x"):
        response = await sign_in(h.client, bad)
        assert response.status == 401, bad[:20]
        text = await response.text()
        assert "not valid, or it was revoked" in text
        assert "<script>alert(1)" not in text and "alert(1)" not in text
        assert SESSION_COOKIE not in response.cookies
    assert (await h.client.get("/dashboard/calls", allow_redirects=False)).status == 303


async def test_sign_in_sets_an_httponly_samesite_cookie_without_the_key(settings, h):
    _org, headers = await h.org("Acme Dental")
    response = await sign_in(h.client, secret_of(headers))
    assert response.status == 303 and response.headers["Location"] == "/dashboard/calls"
    cookie = _cookie(response, SESSION_COOKIE)
    assert cookie is not None
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/dashboard"
    assert not cookie["secure"]  # plain http, secure_cookie=auto
    assert int(cookie["max-age"]) == settings.dashboard.session_ttl_s
    assert secret_of(headers) not in cookie.value and secret_of(headers)[:12] not in cookie.value
    page = await h.client.get("/dashboard/calls")
    assert page.status == 200
    text = await page.text()
    assert "Acme Dental" in text
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


async def test_sign_in_without_the_form_token_is_refused(h):
    _, headers = await h.org()
    response = await h.client.post("/dashboard/signin", data={"api_key": secret_of(headers)},
                                   allow_redirects=False)
    assert response.status == 403
    assert SESSION_COOKIE not in response.cookies
    h.client.session.cookie_jar.update_cookies({SIGNIN_COOKIE: "a" * 32})
    forged = await h.client.post("/dashboard/signin", data={"api_key": secret_of(headers), "csrf_token": "b" * 32},
                                 allow_redirects=False)
    assert forged.status == 403


async def test_secure_cookie_behind_a_tls_proxy_only_when_trusted(tmp_path):
    for trust, expect in ((False, False), (True, True)):
        settings = make_settings(tmp_path / str(trust), dashboard={"trust_forwarded_proto": trust})
        async with harness(settings) as h:
            _, headers = await h.org()
            page = await h.client.get("/dashboard/signin", headers={"X-Forwarded-Proto": "https"})
            assert bool(page.cookies[SIGNIN_COOKIE]["secure"]) is expect
            token = form_token(await page.text())
            h.client.session.cookie_jar.clear()  # a Secure cookie would not come back over this plain http
            response = await h.client.post("/dashboard/signin", data={"csrf_token": token,
                                                                      "api_key": secret_of(headers)},
                                           headers={"X-Forwarded-Proto": "https",
                                                    "Cookie": f"{SIGNIN_COOKIE}={token}"}, allow_redirects=False)
            assert response.status == 303
            assert bool(response.cookies[SESSION_COOKIE]["secure"]) is expect


async def test_posts_without_the_session_csrf_token_change_nothing(h):
    org, headers = await h.org()
    repo = await h.cp.repository()
    call = await write_call(repo, org.id, status="answered")
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    token = await session_token(h.client)
    for data in ({}, {"csrf_token": "wrong"}, {"csrf_token": token[:-1]}):
        response = await h.client.post(f"/dashboard/calls/{call.id}/hangup", data=data, allow_redirects=False)
        assert response.status == 403
        assert "reload the page" in await response.text()
    assert h.telnyx.named("hangup") == []
    assert (await repo.get_call(org.id, call.id)).hangup_requested_at is None
    signout = await h.client.post("/dashboard/signout", data={}, allow_redirects=False)
    assert signout.status == 403
    assert (await h.client.get("/dashboard/calls", allow_redirects=False)).status == 200
    ok = await h.client.post(f"/dashboard/calls/{call.id}/hangup", data={"csrf_token": token},
                             allow_redirects=False)
    assert ok.status == 303 and ok.headers["Location"] == "/dashboard/calls?notice=hangup"
    assert [c["call_control_id"] for c in h.telnyx.named("hangup")] == [call.call_control_id]


async def test_another_organisations_call_is_not_found(h):
    org_a, _ = await h.org("A")
    _, headers_b = await h.org("B")
    repo = await h.cp.repository()
    call_a = await write_call(repo, org_a.id, status="answered", to="+14155550999")
    assert (await sign_in(h.client, secret_of(headers_b))).status == 303
    token = await session_token(h.client)
    detail = await h.client.get(f"/dashboard/calls/{call_a.id}")
    assert detail.status == 404
    assert "+14155550999" not in await detail.text()
    hangup = await h.client.post(f"/dashboard/calls/{call_a.id}/hangup", data={"csrf_token": token},
                                 allow_redirects=False)
    assert hangup.status == 404
    assert h.telnyx.named("hangup") == []
    listing = await (await h.client.get("/dashboard/calls")).text()
    assert str(call_a.id) not in listing and "+14155550999" not in listing
    assert (await h.client.get("/dashboard/calls/not-a-uuid")).status == 404


async def test_signing_out_and_revoking_the_key_end_the_session(h):
    _, headers = await h.org()
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    token = await session_token(h.client)
    out = await h.client.post("/dashboard/signout", data={"csrf_token": token}, allow_redirects=False)
    assert out.status == 303
    assert (await h.client.get("/dashboard/calls", allow_redirects=False)).status == 303

    second = (await (await h.client.post("/api/keys", json={"name": "spare"}, headers=headers)).json())
    assert (await sign_in(h.client, second["key"])).status == 303
    assert (await h.client.get("/dashboard/calls", allow_redirects=False)).status == 200
    revoked = await h.client.delete(f"/api/keys/{second['id']}", headers=headers)
    assert revoked.status == 200
    after = await h.client.get("/dashboard/calls", allow_redirects=False)
    assert after.status == 303 and after.headers["Location"] == "/dashboard/signin?notice=expired"


def _session(expires_at: float) -> DashboardSession:
    return DashboardSession(org_id=uuid.uuid4(), api_key_id=uuid.uuid4(), api_key_prefix="ck_abc",
                            csrf_token="t" * 43, expires_at=expires_at)


async def test_memory_sessions_expire_on_the_clock():
    now = [1000.0]
    store = MemoryDashboardSessions(clock=lambda: now[0])
    session_id = await store.create(_session(expires_at=1000.0 + 8 * 3600))
    assert await store.get(session_id) is not None
    assert await store.get(session_id + "x") is None
    now[0] += 8 * 3600
    assert await store.get(session_id) is None


async def test_redis_sessions_are_stored_under_a_hash_of_the_id(redis_prefix):
    import redis.asyncio as redis

    from tests.control_plane.conftest import REDIS_URL

    client = redis.from_url(REDIS_URL)
    try:
        now = [5000.0]
        store = RedisDashboardSessions(client, redis_prefix, clock=lambda: now[0])
        session = _session(expires_at=5000.0 + 60)
        session_id = await store.create(session)
        assert await store.get(session_id) == session
        keys = [k.decode() async for k in client.scan_iter(match=redis_prefix + "dashboard:*")]
        assert len(keys) == 1 and session_id not in keys[0]
        assert 0 < await client.ttl(keys[0]) <= 60
        now[0] += 61  # past expiry even if Redis has not dropped it yet
        assert await store.get(session_id) is None
        await store.delete(session_id)
        assert await client.exists(keys[0]) == 0
    finally:
        await client.aclose()


async def test_sessions_live_in_redis_when_it_is_configured(tmp_path, redis_prefix):
    settings = make_settings(tmp_path, redis_prefix=redis_prefix)
    async with harness(settings) as h:
        _, headers = await h.org()
        assert (await sign_in(h.client, secret_of(headers))).status == 303
        keys = [k async for k in h.cp.redis.scan_iter(match=settings.redis_key_prefix + "dashboard:session:*")]
        assert len(keys) == 1
        assert (await h.client.get("/dashboard/calls", allow_redirects=False)).status == 200


async def test_sign_in_attempts_are_rate_limited(tmp_path):
    settings = make_settings(tmp_path, dashboard={"signin_attempts_per_minute": 3})
    async with harness(settings) as h:
        _, headers = await h.org()
        for _ in range(3):
            assert (await sign_in(h.client, "ck_wrong")).status == 401
        limited = await sign_in(h.client, secret_of(headers))  # even the right key waits now
        assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "Too many sign-in attempts" in await limited.text()
        assert SESSION_COOKIE not in limited.cookies
