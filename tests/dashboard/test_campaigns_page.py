"""The campaigns page: progress and the start / pause / resume / cancel buttons, scoped to the
signed-in organisation and going through the API's transitions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from control_plane.settings import Settings
from tests.control_plane.conftest import make_settings

from .helpers import secret_of, session_token, sign_in

AGENT = {"personality": "friendly", "voice": "Telnyx.NaturalHD.astra", "language": "en-US"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The embedded store, without the background dialer (the page's buttons are what these tests drive)."""
    return make_settings(tmp_path, campaigns={"dialer": False})


async def _campaign(h, headers, name: str = "spring") -> str:  # type: ignore[no-untyped-def]
    body = {"name": name, "agent_config": AGENT, "caller_numbers": ["+14155550100"], "calls_per_minute": 30}
    created = await (await h.client.post("/api/campaigns", json=body, headers=headers)).json()
    csv = b"phone\n+14155550201\n+14155550202\n"
    uploaded = await h.client.post(f"/api/campaigns/{created['id']}/contacts", data=csv,
                                   headers={**headers, "Content-Type": "text/csv"})
    assert uploaded.status == 200
    return str(created["id"])


async def test_campaign_progress_and_its_state_changes(h: Path):
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


async def test_another_organisations_campaign_is_not_listed_or_touched(h: Path):
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
          pairs: tuple[tuple[str, str], ...] = (), **fields: str):  # type: ignore[no-untyped-def]
    from aiohttp import FormData

    form = FormData(default_to_multipart=True)
    if token is not None:
        form.add_field("csrf_token", token)
    values = {"name": "autumn", "caller_numbers": "+14155550100", "calls_per_minute": "20", **fields}
    for name, value in (*values.items(), *pairs):
        form.add_field(name, value)
    if csv is not None:
        form.add_field("contacts", csv, filename="contacts.csv", content_type="text/csv")
    return form


async def test_a_campaign_is_created_from_a_csv_with_a_report_of_its_rows(h: Path):
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


async def test_a_refused_create_form_writes_nothing_and_names_the_field(h: Path):
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


FULL = {"name": "winter recall", "personality": "professional", "system_prompt": "You call {name} about {topic}.",
        "first_message": "Hi {name}, Bright Smiles here.", "voice": "Telnyx.NaturalHD.astra", "language": "en-US",
        "caller_numbers": "+14155550100, +14155550101", "calls_per_minute": "12", "max_concurrent_calls": "4",
        "max_calls_per_number": "2", "ring_timeout_s": "25", "window_start": "09:30", "window_end": "18:00",
        "window_timezone": "America/Chicago", "retry_max_attempts": "4", "retry_backoff_min": "10",
        "retry_backoff_multiplier": "2", "answering_machine_detection": "on", "voicemail_action": "message",
        "voicemail_message": "Hi {name}, please call us back.", "voicemail_voice": "Telnyx.NaturalHD.astra",
        "voicemail_language": "en-US"}
TICKED = (("window_days", ""), ("window_days", "mon"), ("window_days", "wed"), ("window_days", "fri"),
          ("retry_on", ""), ("retry_on", "busy"), ("retry_on", "machine"))
ROWS = (b"phone,name,topic\n+14155550201,Ann,cleaning\n12345,Bad,x\n+14155550201,Ann again,x\n"
        b"+14155550203,Cy,whitening\n,Nobody,x\n")


async def test_every_field_of_the_form_reaches_the_campaign_and_each_bad_csv_row_is_listed(h: Path):
    _, headers = await h.org()
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    token = await session_token(h.client)
    response = await h.client.post("/dashboard/campaigns", data=_form(token, ROWS, TICKED, **FULL))
    text = await response.text()
    assert response.status == 201, text[-800:]
    assert "2 contacts added" in text and "3 rejected" in text
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td></tr>", text.split('id="rejected-rows"')[1])
    assert [int(r) for r, _ in rows] == [3, 4, 6]  # the header is row 1
    assert "invalid phone number" in rows[0][1] and rows[1][1] == "duplicate" and "phone" in rows[2][1]
    (listed,) = (await (await h.client.get("/api/campaigns", headers=headers)).json())["data"]
    detail = await (await h.client.get(f"/api/campaigns/{listed['id']}", headers=headers)).json()
    assert detail["agent_config"] == {"personality": "professional", "system_prompt": FULL["system_prompt"],
                                      "first_message": FULL["first_message"], "voice": "Telnyx.NaturalHD.astra",
                                      "language": "en-US"}
    config = detail["config"]
    assert config["caller_numbers"] == ["+14155550100", "+14155550101"]
    assert (config["calls_per_minute"], config["max_concurrent_calls"], config["max_calls_per_number"],
            config["ring_timeout_s"]) == (12, 4, 2, 25)
    assert config["window"] == {"start": "09:30", "end": "18:00", "days": ["mon", "wed", "fri"],
                                "timezone": "America/Chicago"}
    assert config["retry"] == {"on": ["busy", "machine"], "max_attempts": 4, "backoff_s": 600.0,
                               "backoff_multiplier": 2.0}
    assert config["answering_machine_detection"] is True
    assert config["voicemail"] == {"action": "message", "message": "Hi {name}, please call us back.",
                                   "voice": "Telnyx.NaturalHD.astra", "language": "en-US"}


async def test_unticked_boxes_mean_none_and_an_empty_window_means_any_time(h: Path):
    _, headers = await h.org()
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    token = await session_token(h.client)
    form = _form(token, pairs=(("retry_on", ""), ("answering_machine_detection", "off")))
    assert (await h.client.post("/dashboard/campaigns", data=form)).status == 201
    (listed,) = (await (await h.client.get("/api/campaigns", headers=headers)).json())["data"]
    config = (await (await h.client.get(f"/api/campaigns/{listed['id']}", headers=headers)).json())["config"]
    assert config["retry"]["on"] == [] and config["answering_machine_detection"] is False
    assert config["window"] is None and config["voicemail"]["action"] == "hangup"


async def test_a_refused_field_is_shown_next_to_it_and_the_others_are_kept(h: Path):
    _, headers = await h.org()
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    token = await session_token(h.client)
    cases = (
        ({"window_timezone": "Mars/Olympus_Mons"}, "window_timezone", "unknown time zone"),
        ({"window_end": "09:30"}, "window_start", "start and end must differ"),
        ({"window_end": "25:99"}, "window_end", None),
        ({"voicemail_message": ""}, "voicemail_message", "needs a message"),
        ({"voicemail_language": "en"}, "voicemail_language", "en-US"),
        ({"retry_backoff_multiplier": "nan"}, "retry_backoff_multiplier", "must be a number"),
        ({"retry_max_attempts": "99"}, "retry_max_attempts", None),
        ({"system_prompt": "x" * 20_001}, "system_prompt", None),
    )
    for change, field, message in cases:
        response = await h.client.post("/dashboard/campaigns", data=_form(token, ROWS, TICKED, **{**FULL,
                                                                                              **change}))
        text = await response.text()
        assert response.status == 400, (change, text[-600:])
        assert f'id="error-{field}"' in text, (change, text[-1500:])
        if message:
            assert message in text.split(f'id="error-{field}"')[1][:300], change
        assert "Mars" not in text and "25:99" not in text and "x" * 50 not in text
        assert 'value="winter recall"' in text and 'value="+14155550100, +14155550101"' in text
        assert 'value="wed" checked' in text and 'value="tue" checked' not in text
    assert (await (await h.client.get("/api/campaigns", headers=headers)).json())["data"] == []
    unknown_box = await h.client.post("/dashboard/campaigns", data=_form(token, pairs=(("retry_on", "boredom"),)))
    assert unknown_box.status == 400 and 'id="error-retry_on"' in await unknown_box.text()


async def test_a_nested_multipart_part_is_refused_with_400_and_writes_nothing(h: Path):
    _, headers = await h.org()
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    token = await session_token(h.client)
    csrf = f'--XX\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
    nested = ('--XX\r\nContent-Type: multipart/mixed; boundary=YY\r\n'
              'Content-Disposition: form-data; name="{}"\r\n\r\n'
              '--YY\r\nContent-Type: text/plain\r\n\r\nphone\n+14155550101\r\n--YY--\r\n')
    plain = ('--XX\r\nContent-Disposition: form-data; name="name"\r\n\r\nc1\r\n'
             '--XX\r\nContent-Disposition: form-data; name="caller_numbers"\r\n\r\n+14155550100\r\n')
    for body in (csrf + nested.format("name") + "--XX--\r\n",
                 csrf + plain + nested.format("contacts") + "--XX--\r\n"):
        response = await h.client.post("/dashboard/campaigns", data=body.encode(),
                                       headers={"Content-Type": "multipart/form-data; boundary=XX"})
        text = await response.text()
        assert response.status == 400, text[-600:]
        assert "nested multipart" in text
    assert (await (await h.client.get("/api/campaigns", headers=headers)).json())["data"] == []
