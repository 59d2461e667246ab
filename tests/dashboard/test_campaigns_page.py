"""The campaigns page: progress and the start / pause / resume / cancel buttons, scoped to the
signed-in organisation and going through the API's transitions."""

from __future__ import annotations

from pathlib import Path

from tests.control_plane.conftest import make_settings
from tests.control_plane.fakes import harness
from tests.control_plane.helpers import run_async

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


@run_async
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


@run_async
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
