"""The campaigns page: progress and the start / pause / resume / cancel buttons, scoped to the
signed-in organisation and going through the API's transitions."""

from __future__ import annotations

from pathlib import Path

from tests.control_plane.conftest import make_settings
from tests.control_plane.fakes import harness

from .helpers import secret_of, session_token, sign_in

AGENT = {"personality": "friendly", "voice": "Telnyx.NaturalHD.astra", "language": "en-US"}


async def _campaign(h, headers, name: str = "spring") -> str:  # type: ignore[no-untyped-def]
    body = {"name": name, "agent_config": AGENT, "caller_numbers": ["+14155550100"], "calls_per_minute": 30}
    created = await (await h.client.post("/api/campaigns", json=body, headers=headers)).json()
    csv = b"phone\n+14155550201\n+14155550202\n"
    uploaded = await h.client.post(f"/api/campaigns/{created['id']}/contacts", data=csv,
                                   headers={**headers, "Content-Type": "text/csv"})
    assert uploaded.status == 200
    return str(created["id"])


async def test_campaign_progress_and_its_state_changes(tmp_path: Path):
    async with harness(make_settings(tmp_path, campaigns={"dialer": False})) as h:
        _, headers = await h.org()
        campaign_id = await _campaign(h, headers)
        assert (await sign_in(h.client, secret_of(headers))).status == 303
        token = await session_token(h.client)
        text = await (await h.client.get("/dashboard/campaigns")).text()
        assert "spring" in text and "0 / 2" in text and "30/min" in text and "2 at once" not in text
        assert f'action="/dashboard/campaigns/{campaign_id}/start"' in text
        for action, status in (("start", "running"), ("pause", "paused"), ("resume", "running")):
            response = await h.client.post(f"/dashboard/campaigns/{campaign_id}/{action}",
                                           data={"csrf_token": token}, allow_redirects=False)
            assert response.status == 303, action
            api = await (await h.client.get(f"/api/campaigns/{campaign_id}", headers=headers)).json()
            assert api["status"] == status
        refused = await h.client.post(f"/dashboard/campaigns/{campaign_id}/resume", data={"csrf_token": token})
        assert refused.status == 409 and "cannot resume a campaign that is running" in await refused.text()
        unknown = await h.client.post(f"/dashboard/campaigns/{campaign_id}/explode", data={"csrf_token": token})
        assert unknown.status == 404
        forged = await h.client.post(f"/dashboard/campaigns/{campaign_id}/cancel", data={})
        assert forged.status == 403
        cancelled = await h.client.post(f"/dashboard/campaigns/{campaign_id}/cancel", data={"csrf_token": token},
                                        allow_redirects=False)
        assert cancelled.status == 303
        text = await (await h.client.get("/dashboard/campaigns")).text()
        assert "cancelled" in text and f'/dashboard/campaigns/{campaign_id}/pause' not in text


async def test_another_organisations_campaign_is_not_listed_or_touched(tmp_path: Path):
    async with harness(make_settings(tmp_path, campaigns={"dialer": False})) as h:
        _, headers_a = await h.org("A")
        campaign_a = await _campaign(h, headers_a, name="a-secret-campaign")
        _, headers_b = await h.org("B")
        assert (await sign_in(h.client, secret_of(headers_b))).status == 303
        token = await session_token(h.client)
        text = await (await h.client.get("/dashboard/campaigns")).text()
        assert "a-secret-campaign" not in text and "No campaigns yet." in text
        response = await h.client.post(f"/dashboard/campaigns/{campaign_a}/start", data={"csrf_token": token})
        assert response.status == 404
        api = await (await h.client.get(f"/api/campaigns/{campaign_a}", headers=headers_a)).json()
        assert api["status"] == "draft"


def _form(token: str | None, csv: bytes | None = b"phone,name\n+14155550201,Ann\n+14155550202,Bo\nnot-a-number,X\n",
          **fields: str):  # type: ignore[no-untyped-def]
    from aiohttp import FormData

    form = FormData(default_to_multipart=True)
    if token is not None:
        form.add_field("csrf_token", token)
    values = {"name": "autumn", "caller_numbers": "+14155550100", "calls_per_minute": "20", **fields}
    for name, value in values.items():
        form.add_field(name, value)
    if csv is not None:
        form.add_field("contacts", csv, filename="contacts.csv", content_type="text/csv")
    return form


async def test_a_campaign_is_created_from_a_csv_with_a_report_of_its_rows(tmp_path: Path):
    async with harness(make_settings(tmp_path, campaigns={"dialer": False})) as h:
        org, headers = await h.org()
        repo = await h.cp.repository()
        await repo.add_dnc(org.id, "+14155550202")
        assert (await sign_in(h.client, secret_of(headers))).status == 303
        token = await session_token(h.client)
        response = await h.client.post("/dashboard/campaigns", data=_form(token))
        assert response.status == 201, await response.text()
        text = await response.text()
        assert "autumn" in text and "2 contacts added (1 on the do-not-call list" in text and "1 rejected" in text
        listed = (await (await h.client.get("/api/campaigns", headers=headers)).json())["data"]
        assert [c["name"] for c in listed] == ["autumn"] and listed[0]["status"] == "draft"
        detail = await (await h.client.get(f"/api/campaigns/{listed[0]['id']}", headers=headers)).json()
        assert detail["total_contacts"] == 2 and detail["config"]["calls_per_minute"] == 20
        assert detail["config"]["caller_numbers"] == ["+14155550100"]


async def test_a_refused_create_form_writes_nothing_and_names_the_field(tmp_path: Path):
    async with harness(make_settings(tmp_path, campaigns={"dialer": False})) as h:
        _, headers = await h.org()
        assert (await sign_in(h.client, secret_of(headers))).status == 303
        token = await session_token(h.client)
        cases = (
            (_form(None), 403, "reload the page"),
            (_form("forged"), 403, "reload the page"),
            (_form(token, caller_numbers="<i>555</i>"), 400, "check these fields: caller numbers"),
            (_form(token, calls_per_minute="lots"), 400, "calls per minute must be a whole number"),
            (_form(token, calls_per_minute="0"), 400, "check these fields: calls per minute"),
            (_form(token, personality="nobody-<x>"), 422, "personality"),
            (_form(token, csv=None), 400, "choose a contacts CSV file"),
        )
        for form, status, message in cases:
            response = await h.client.post("/dashboard/campaigns", data=form)
            text = await response.text()
            assert response.status == status, (message, text[-600:])
            assert message in text
            assert "555</i>" not in text and "555&lt;" not in text and "nobody" not in text and "lots" not in text
        assert (await (await h.client.get("/api/campaigns", headers=headers)).json())["data"] == []
        plain = await h.client.post("/dashboard/campaigns", data={"csrf_token": token, "name": "x"})
        assert plain.status == 415
