"""The settings pages: API keys, inbound numbers and the do-not-call list, each scoped to the
signed-in organisation and going through the API's own rules."""

from __future__ import annotations

import re
import uuid


from .helpers import secret_of, session_token, sign_in

_NEW_KEY = re.compile(r'<code id="new-key">(ck_[^<]+)</code>')


async def _signed_in(h, name: str = "Org"):  # type: ignore[no-untyped-def]
    org, headers = await h.org(name)
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    return org, headers, await session_token(h.client)


async def test_keys_are_created_shown_once_and_revoked(h):
    org, headers, token = await _signed_in(h)
    created = await h.client.post("/dashboard/keys", data={"csrf_token": token, "name": "crm <sync>"})
    assert created.status == 201
    text = await created.text()
    secret = _NEW_KEY.search(text).group(1)
    assert "crm &lt;sync&gt;" in text
    assert (await h.client.get("/api/calls", headers={"Authorization": f"Bearer {secret}"})).status == 200
    listing = await (await h.client.get("/dashboard/keys")).text()
    assert secret not in listing and "crm &lt;sync&gt;" in listing
    repo = await h.cp.repository()
    new_id = next(k.id for k in await repo.list_api_keys(org.id) if k.name == "crm <sync>")
    revoked = await h.client.post(f"/dashboard/keys/{new_id}/revoke", data={"csrf_token": token},
                                  allow_redirects=False)
    assert revoked.status == 303 and revoked.headers["Location"] == "/dashboard/keys?notice=key_revoked"
    assert (await h.client.get("/api/calls", headers={"Authorization": f"Bearer {secret}"})).status == 401
    assert (await h.client.post("/dashboard/keys", data={"csrf_token": token, "name": ""})).status == 400


async def test_the_last_key_stays_and_another_orgs_key_is_not_found(h):
    other, _ = await h.org("other")
    repo = await h.cp.repository()
    other_key = (await repo.list_api_keys(other.id))[0]
    org, _, token = await _signed_in(h)
    own_key = (await repo.list_api_keys(org.id))[0]
    last = await h.client.post(f"/dashboard/keys/{own_key.id}/revoke", data={"csrf_token": token})
    assert last.status == 409 and "last active key" in await last.text()
    foreign = await h.client.post(f"/dashboard/keys/{other_key.id}/revoke", data={"csrf_token": token})
    assert foreign.status == 404
    assert (await repo.list_api_keys(other.id))[0].revoked_at is None
    assert (await h.client.post(f"/dashboard/keys/{uuid.uuid4()}/revoke", data={"csrf_token": token})).status \
        == 404


async def test_revoking_the_sessions_own_key_signs_it_out(h):
    org, headers, token = await _signed_in(h)
    await h.client.post("/api/keys", json={"name": "spare"}, headers=headers)
    repo = await h.cp.repository()
    own = next(k for k in await repo.list_api_keys(org.id) if k.name == "test")
    await h.client.post(f"/dashboard/keys/{own.id}/revoke", data={"csrf_token": token}, allow_redirects=False)
    after = await h.client.get("/dashboard/keys", allow_redirects=False)
    assert after.status == 303 and after.headers["Location"].startswith("/dashboard/signin")


async def test_numbers_are_added_checked_and_removed(h):
    other, other_headers = await h.org("other")
    await h.client.post("/api/numbers", json={"number": "+14155550300"}, headers=other_headers)
    org, _, token = await _signed_in(h)
    added = await h.client.post("/dashboard/numbers", data={"csrf_token": token, "number": "+1 (415) 555-0100",
                                                           "personality": "professional"}, allow_redirects=False)
    assert added.status == 303
    text = await (await h.client.get("/dashboard/numbers")).text()
    assert "+14155550100" in text and "professional" in text and "+14155550300" not in text
    repo = await h.cp.repository()
    assert [n.agent_config for n in await repo.list_phone_numbers(org.id)] == [{"personality": "professional"}]
    for data, status, message in (({"number": "<b>555</b>"}, 400, "not an E.164 phone number"),
                                  ({"number": "+14155550300"}, 409, "already registered"),
                                  ({"number": "+14155550101", "personality": "nobody<x>"}, 422, "personality")):
        response = await h.client.post("/dashboard/numbers", data={"csrf_token": token, **data})
        assert response.status == status, data
        body = await response.text()
        assert message in body and "555</b>" not in body and "555&lt;" not in body and "nobody" not in body
    gone = await h.client.post("/dashboard/numbers/remove", data={"csrf_token": token, "number": "+14155550100"},
                               allow_redirects=False)
    assert gone.status == 303 and await repo.list_phone_numbers(org.id) == []
    foreign = await h.client.post("/dashboard/numbers/remove", data={"csrf_token": token,
                                                                     "number": "+14155550300"})
    assert foreign.status == 404
    assert len(await repo.list_phone_numbers(other.id)) == 1


async def test_do_not_call_add_check_remove_per_organisation(h):
    other, _ = await h.org("other")
    org, _, token = await _signed_in(h)
    add = await h.client.post("/dashboard/dnc", data={"csrf_token": token, "phone": "+14155550777",
                                                     "reason": "asked twice"}, allow_redirects=False)
    assert add.headers["Location"] == "/dashboard/dnc?notice=dnc_added"
    again = await h.client.post("/dashboard/dnc", data={"csrf_token": token, "phone": "+14155550777"},
                                allow_redirects=False)
    assert again.headers["Location"] == "/dashboard/dnc?notice=dnc_already"
    repo = await h.cp.repository()
    assert (await repo.get_dnc(org.id, "+14155550777")).source == "dashboard"
    assert await repo.get_dnc(other.id, "+14155550777") is None
    check = await (await h.client.post("/dashboard/dnc/check", data={"csrf_token": token,
                                                                     "phone": "+14155550777"})).text()
    assert "on the list since" in check and "asked twice" in check
    bad = await h.client.post("/dashboard/dnc/check", data={"csrf_token": token, "phone": "call me"})
    assert bad.status == 400 and "call me" not in await bad.text()
    removed = await h.client.post("/dashboard/dnc/remove", data={"csrf_token": token, "phone": "+14155550777"},
                                  allow_redirects=False)
    assert removed.headers["Location"] == "/dashboard/dnc?notice=dnc_removed"
    assert await repo.get_dnc(org.id, "+14155550777") is None
