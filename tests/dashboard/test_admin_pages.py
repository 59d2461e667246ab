"""The settings pages: API keys, inbound numbers and the do-not-call list, each scoped to the
signed-in organisation and going through the API's own rules."""

from __future__ import annotations

import re
import uuid

from tests.control_plane.fakes import harness
from tests.control_plane.helpers import with_tenant_networks

from .helpers import secret_of, session_token, sign_in

_NEW_KEY = re.compile(r'<code id="new-key">(ck_[^<]+)</code>')


async def _signed_in(h, name: str = "Org"):  # type: ignore[no-untyped-def]
    org, headers = await h.org(name)
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    return org, headers, await session_token(h.client)


async def test_keys_are_created_shown_once_and_revoked(h):
    org, _headers, token = await _signed_in(h)
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


def _unique_number() -> str:
    """Numbers are unique across organisations, and the PostgreSQL schema is shared by the session."""
    return "+1415" + str(uuid.uuid4().int)[:7]


async def test_a_number_is_added_with_its_agent_config_and_a_refused_field_is_named_inline(h):
    first, second, third = _unique_number(), _unique_number(), _unique_number()
    org, _, token = await _signed_in(h)
    form = {"csrf_token": token, "number": first, "personality": "professional",
            "system_prompt": "You book cleanings for {clinic}.", "first_message": "Bright Smiles, hello!",
            "voice": "Telnyx.NaturalHD.astra", "language": "en-US", "record": "on"}
    assert (await h.client.post("/dashboard/numbers", data=form, allow_redirects=False)).status == 303
    repo = await h.cp.repository()
    (number,) = await repo.list_phone_numbers(org.id)
    assert number.agent_config == {"personality": "professional", "system_prompt": "You book cleanings for "
                                   "{clinic}.", "first_message": "Bright Smiles, hello!",
                                   "voice": "Telnyx.NaturalHD.astra", "language": "en-US", "record": True}
    listing = await (await h.client.get("/dashboard/numbers")).text()
    assert "Bright Smiles, hello!" in listing and "You book cleanings" in listing and "recording on" in listing
    # A greeting too long for the API: refused at its field, the other fields kept, nothing stored.
    refused = await h.client.post("/dashboard/numbers", data={**form, "number": second,
                                                              "first_message": "x" * 1001})
    assert refused.status == 422
    text = await refused.text()
    assert 'id="error-first_message"' in text and "x" * 100 not in text
    assert f'value="{second}"' in text and "You book cleanings for {clinic}.</textarea>" in text
    bad_record = await h.client.post("/dashboard/numbers", data={**form, "number": third,
                                                                 "record": "sometimes"})
    assert bad_record.status == 400 and 'id="error-record"' in await bad_record.text()
    assert len(await repo.list_phone_numbers(org.id)) == 1


async def test_organisation_settings_are_shown_changed_and_reset(settings):
    async with harness(with_tenant_networks(settings, "10.0.0.0/8")) as h:
        other, other_headers = await h.org("other")
        await h.client.patch("/api/organisation/settings", json={"record_calls": True,
                                                                  "tool_allowed_destinations": ["other.internal"]},
                             headers=other_headers)
        org, headers, token = await _signed_in(h, "Acme")
        page = await (await h.client.get("/dashboard/organisation")).text()
        assert "Acme" in page and str(org.id) in page and "other.internal" not in page
        assert '<option value="" selected>' in page
        from control_plane.numbers import ORGANISATION_SETTINGS

        assert all(f'name="{name}"' in page for name in ORGANISATION_SETTINGS)  # a new setting needs its field
        saved = await h.client.post("/dashboard/organisation", allow_redirects=False, data={
            "csrf_token": token, "record_calls": "on", "tool_allowed_destinations": "crm.internal\n 10.20.0.0/16 \n"})
        assert saved.status == 303 and saved.headers["Location"] == "/dashboard/organisation?notice=settings_saved"
        api = await (await h.client.get("/api/organisation", headers=headers)).json()
        assert api["settings"] == {"record_calls": True, "tool_allowed_destinations": ["crm.internal", "10.20.0.0/16"]}
        page = await (await h.client.get("/dashboard/organisation?notice=settings_saved")).text()
        assert "Organisation settings saved." in page and '<option value="on" selected>' in page
        assert "crm.internal\n10.20.0.0/16" in page
        # The second entry is neither a host nor a network: named by position, next to the field.
        refused = await h.client.post("/dashboard/organisation", data={
            "csrf_token": token, "record_calls": "off", "tool_allowed_destinations": "ok.internal\nhttp://<x>/"})
        assert refused.status == 400
        text = await refused.text()
        assert 'id="error-tool_allowed_destinations"' in text and "#2 is neither" in text
        assert "&lt;x&gt;" not in text and '<option value="off" selected>' in text  # the other field is kept
        api = await (await h.client.get("/api/organisation", headers=headers)).json()
        assert api["settings"]["tool_allowed_destinations"] == ["crm.internal", "10.20.0.0/16"]
        for data in ({"record_calls": "maybe"}, {"tool_allowed_destinations": "\n".join(f"h{i}.internal"
                                                                                        for i in range(51))}):
            response = await h.client.post("/dashboard/organisation", data={"csrf_token": token, **data})
            assert response.status == 400 and "check these fields" in await response.text()
        forged = await h.client.post("/dashboard/organisation", data={"csrf_token": "x", "record_calls": "off"})
        assert forged.status == 403
        reset = await h.client.post("/dashboard/organisation", allow_redirects=False,
                                    data={"csrf_token": token, "record_calls": "", "tool_allowed_destinations": ""})
        assert reset.status == 303
        assert (await (await h.client.get("/api/organisation", headers=headers)).json())["settings"] == {}
        theirs = await (await h.client.get("/api/organisation", headers=other_headers)).json()
        assert theirs["settings"] == {"record_calls": True, "tool_allowed_destinations": ["other.internal"]}
        assert other.id != org.id


async def test_a_numbers_agent_is_edited_keeping_what_the_form_does_not_show(h):
    mine, theirs = _unique_number(), _unique_number()
    other, other_headers = await h.org("other")
    await h.client.post("/api/numbers", json={"number": theirs}, headers=other_headers)
    org, headers, token = await _signed_in(h)
    await h.client.post("/api/numbers", headers=headers, json={"number": mine, "agent_config": {
        "personality": "professional", "first_message": "Hello!", "tools": ["end_call"], "record": True}})
    listing = await (await h.client.get("/dashboard/numbers")).text()
    assert f'href="/dashboard/numbers/%2B{mine[1:]}"' in listing
    page = await (await h.client.get(f"/dashboard/numbers/%2B{mine[1:]}")).text()
    assert 'value="professional"' in page and 'value="Hello!"' in page and '<option value="on" selected>' in page
    assert "tools" in page.split('id="kept-keys"')[1][:200]
    edited = await h.client.post(f"/dashboard/numbers/%2B{mine[1:]}", allow_redirects=False, data={
        "csrf_token": token, "personality": "sales", "first_message": "", "language": "en-GB", "record": ""})
    assert edited.status == 303 and edited.headers["Location"] == "/dashboard/numbers?notice=number_updated"
    repo = await h.cp.repository()
    (number,) = await repo.list_phone_numbers(org.id)
    assert number.agent_config == {"tools": ["end_call"], "personality": "sales", "language": "en-GB"}
    refused = await h.client.post(f"/dashboard/numbers/%2B{mine[1:]}", data={
        "csrf_token": token, "personality": "nobody<x>", "language": "fr-FR"})
    assert refused.status == 422
    text = await refused.text()
    assert 'id="error-personality"' in text and "nobody" not in text and 'value="fr-FR"' in text
    assert (await repo.list_phone_numbers(org.id))[0].agent_config == number.agent_config
    # Another organisation's number, or none: not found, and unchanged.
    for path in (f"/dashboard/numbers/%2B{theirs[1:]}", "/dashboard/numbers/%2B14155550999",
                 "/dashboard/numbers/not-a-number"):
        assert (await h.client.get(path)).status == 404, path
        assert (await h.client.post(path, data={"csrf_token": token, "personality": "sales"})).status == 404
    assert (await repo.list_phone_numbers(other.id))[0].agent_config == {}
    forged = await h.client.post(f"/dashboard/numbers/%2B{mine[1:]}", data={"csrf_token": "x"})
    assert forged.status == 403
