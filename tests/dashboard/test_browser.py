"""The dashboard in a real headless Chromium (Debian's, driven by Playwright; issue 16 item 6).

Each test starts the app on a local port, signs a browser in with an API key and checks
what a person sees. Screenshots of every page go to the test's tmp_path and are copied to
``test-artifacts/dashboard/`` at the repository root (ignored by git) for CI to keep.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from control_plane.store import Turn, utcnow
from tests.control_plane.conftest import make_settings
from tests.control_plane.fakes import harness

from .helpers import secret_of, write_call, write_turns

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a real Chromium against the running app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
WAIT_MS = 10_000
"""Upper bound for a page to show what the test waits for (events, not sleeps, decide)."""


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    if not CHROMIUM.exists():
        pytest.fail("the browser tests need Debian's chromium: run scripts/system-deps as root "
                    "(apt-get install chromium)", pytrace=False)
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


async def _shot(page: Any, folder: Path, name: str, *, full_page: bool = True) -> None:
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _signed_in_page(chromium: Any, base: str, api_key: str, **context: Any) -> Any:
    page = await (await chromium.new_context(**context)).new_page()
    await page.goto(base + "/dashboard/calls")
    assert page.url.endswith("/dashboard/signin")
    await page.fill("#api_key", api_key)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + "/dashboard/calls")
    return page


def _base(h: Any) -> str:
    return str(h.client.make_url("")).rstrip("/")


async def test_sign_in_refuses_a_bad_key_then_lets_the_right_one_in(tmp_path, shots):
    async with harness(make_settings(tmp_path)) as h, browser() as chromium:
        _, headers = await h.org("Acme Dental")
        base = _base(h)
        page = await (await chromium.new_context()).new_page()
        await page.goto(base + "/dashboard/")
        await page.fill("#api_key", "ck_not-a-key-of-anyone")
        await page.click("button[type=submit]")
        await page.wait_for_selector("p.error")
        assert "not valid, or it was revoked" in await page.inner_text("p.error")
        await _shot(page, shots, "signin-refused")
        await page.fill("#api_key", secret_of(headers))
        await page.click("button[type=submit]")
        await page.wait_for_url(base + "/dashboard/calls")
        assert await page.inner_text("header .org") == "Acme Dental"
        cookies = await page.context.cookies()
        session = [c for c in cookies if c["name"] == "callagent_dashboard"]
        assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Lax"
        assert secret_of(headers) not in session[0]["value"]
        await _shot(page, shots, "calls-empty")
        await page.click("header button")  # sign out
        await page.wait_for_url(base + "/dashboard/signin?notice=signed_out")
        await page.goto(base + "/dashboard/calls")
        assert page.url.endswith("/dashboard/signin")


async def test_a_live_call_appears_ticks_is_hung_up_and_ends(tmp_path, shots):
    settings = make_settings(tmp_path, dashboard={"live_interval_s": 0.1})
    async with harness(settings) as h, browser() as chromium:
        org, headers = await h.org()
        repo = await h.cp.repository()
        for i in range(3):  # some history under the live panel
            await write_call(repo, org.id, created_at=utcnow() - timedelta(hours=i + 1), to=f"+1415555020{i}")
        page = await _signed_in_page(chromium, _base(h), secret_of(headers))
        await page.wait_for_selector("#live-state.on")
        assert await page.inner_text("#live-rows") == "No live calls."

        call = await write_call(repo, org.id, status="answered", to="+14155550177")
        row = f'#live-rows tr[data-call-id="{call.id}"]'
        await page.wait_for_selector(row, timeout=WAIT_MS)
        assert "+14155550177" in await page.inner_text(row)
        assert "answered" in await page.inner_text(f"{row} .status")
        await _shot(page, shots, "calls-live")

        await page.click(f"{row} button")  # hang up: a POST carrying the session's CSRF token
        await page.wait_for_url("**/dashboard/calls?notice=hangup")
        assert [c["call_control_id"] for c in h.telnyx.named("hangup")] == [call.call_control_id]
        await page.wait_for_selector(f"{row} >> text=(hanging up)", timeout=WAIT_MS)

        # Telnyx's call.hangup as the worker would apply it: the call leaves the live panel.
        await repo.update_call(call.id, lambda c: c.model_copy(update={"status": "completed", "ended_at": utcnow()}))
        await page.wait_for_selector(f'#ended-rows tr[data-call-id="{call.id}"]', timeout=WAIT_MS)
        assert await page.inner_text("#live-rows") == "No live calls."
        assert "completed" in await page.inner_text(f'#ended-rows tr[data-call-id="{call.id}"]')
        await _shot(page, shots, "calls-ended")


async def test_a_finished_calls_detail_shows_its_waterfall(tmp_path, shots):
    async with harness(make_settings(tmp_path)) as h, browser() as chromium:
        org, headers = await h.org()
        repo = await h.cp.repository()
        call = await write_call(repo, org.id)
        await write_turns(repo, call)
        await repo.update_call(call.id, lambda c: c.model_copy(update={
            "summary": "The caller moved their cleaning to Tuesday at 10.", "outcome": {"rescheduled": True,
                                                                                        "new_day": "Tuesday"},
            "recording_url": "https://recordings.example.com/r/1.mp3", "cost_amount": "0.0420",
            "cost_currency": "USD"}))
        page = await _signed_in_page(chromium, _base(h), secret_of(headers))
        await page.click(f'a[href="/dashboard/calls/{call.id}"]')
        await page.wait_for_selector(".waterfall")
        assert await page.locator(".waterfall").count() == 2
        assert await page.locator(".waterfall rect").count() == 12
        slow_llm = page.locator("#turn-1 .stage-llm_first_token rect")
        fast_llm = page.locator("#turn-0 .stage-llm_first_token rect")
        assert (await slow_llm.bounding_box())["width"] > 3 * (await fast_llm.bounding_box())["width"]
        assert await page.locator("#turn-1.interrupted .barge-in").count() == 1
        assert await page.locator("#turn-0 .barge-in").count() == 0
        assert "<script>" in await page.inner_text("#turn-1")  # shown as text, never run
        await _shot(page, shots, "call-detail")
        phone = await _signed_in_page(chromium, _base(h), secret_of(headers),
                                      viewport={"width": 390, "height": 844}, is_mobile=True)
        await phone.goto(f"{_base(h)}/dashboard/calls/{call.id}")
        await phone.wait_for_selector(".waterfall")
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing forces sideways scrolling on a phone
        await _shot(phone, shots, "call-detail-phone")


async def test_latency_page_charts_percentiles_over_the_last_hour(tmp_path, shots):
    async with harness(make_settings(tmp_path)) as h, browser() as chromium:
        org, headers = await h.org()
        repo = await h.cp.repository()
        now = utcnow()
        call = await write_call(repo, org.id, created_at=now - timedelta(minutes=59))
        for i in range(60):  # a turn a minute, slower in the middle of the hour
            turn_ms = 450.0 + 15 * (i % 7) + (600.0 if 25 <= i < 32 else 0.0)
            stages = {"endpointing": 180.0, "stt": 40.0 + i % 5, "llm_first_token": turn_ms - 300.0,
                      "first_chunk": 20.0, "tts_first_audio": 45.0, "send": 15.0}
            await repo.upsert_turn(Turn(call_id=call.id, org_id=org.id, index=i, created_at=now - timedelta(
                minutes=59 - i, seconds=30), latency={"turn_latency_ms": turn_ms, "stages_ms": stages}))
        page = await _signed_in_page(chromium, _base(h), secret_of(headers))
        await page.click("nav >> text=Latency")
        await page.wait_for_selector("#latency-chart polyline")
        assert await page.locator("#latency-chart .q-p99 circle").count() == 12
        assert "60" in await page.inner_text("#latency-summary tbody tr:first-child")
        await _shot(page, shots, "latency")


async def test_org_b_cannot_open_org_a_call_and_forms_need_the_csrf_token(tmp_path, shots):
    async with harness(make_settings(tmp_path)) as h, browser() as chromium:
        org_a, headers_a = await h.org("A")
        _, headers_b = await h.org("B")
        repo = await h.cp.repository()
        call_a = await write_call(repo, org_a.id, status="answered", to="+14155550911")
        page_b = await _signed_in_page(chromium, _base(h), secret_of(headers_b))
        response = await page_b.goto(f"{_base(h)}/dashboard/calls/{call_a.id}")
        assert response.status == 404
        assert "+14155550911" not in await page_b.content()
        await _shot(page_b, shots, "other-org-404")

        page_a = await _signed_in_page(chromium, _base(h), secret_of(headers_a))
        await page_a.goto(f"{_base(h)}/dashboard/calls/{call_a.id}")
        await page_a.evaluate("document.querySelector('form.inline input[name=csrf_token]').value = 'forged'")
        await page_a.click("form.inline button")
        await page_a.wait_for_selector("p.error")
        assert "reload the page" in await page_a.inner_text("p.error")
        assert h.telnyx.named("hangup") == []
        await _shot(page_a, shots, "csrf-refused")


async def test_settings_pages_add_a_number_a_key_a_do_not_call_entry_and_a_campaign_from_csv(tmp_path, shots):
    async with harness(make_settings(tmp_path, campaigns={"dialer": False})) as h, browser() as chromium:
        org, headers = await h.org()
        contacts = tmp_path / "contacts.csv"
        contacts.write_text("phone,name\n+14155550201,Ann\n+14155550202,Bo\n12,bad row\n")
        page = await _signed_in_page(chromium, _base(h), secret_of(headers))
        await page.click("nav >> text=Campaigns")
        form = page.locator("#new-campaign")
        await form.locator("input[name=name]").fill("spring recall")
        await form.locator("input[name=caller_numbers]").fill("+14155550100")
        await form.locator("input[name=calls_per_minute]").fill("30")
        await form.locator("input[name=contacts]").set_input_files(str(contacts))
        await form.locator("button").click()
        await page.wait_for_selector("#created-report")
        assert "2 contacts added" in await page.inner_text("#created-report")
        (campaign,) = (await (await h.client.get("/api/campaigns", headers=headers)).json())["data"]
        row = f'tr[data-campaign-id="{campaign["id"]}"]'
        assert "0 / 2" in await page.inner_text(row)
        await _shot(page, shots, "campaign-created")
        await page.click(f"{row} >> text=Start")
        await page.wait_for_selector("p.notice >> text=Campaign started.")
        assert "running" in await page.inner_text(row)
        await _shot(page, shots, "campaigns")
        await page.click("nav >> text=Numbers")
        await page.fill("input[name=number]", "+1 415 555 0100")
        await page.fill("input[name=personality]", "professional")
        await page.click("#new-number button[type=submit]")
        await page.wait_for_selector("#number-list >> text=+14155550100")
        await _shot(page, shots, "numbers")
        await page.click("nav >> text=API keys")
        await page.fill("input[name=name]", "crm-sync")
        await page.click("form.filters button")
        secret = await page.inner_text("#new-key")
        assert secret.startswith("ck_")
        assert (await h.client.get("/api/calls", headers={"Authorization": f"Bearer {secret}"})).status == 200
        await _shot(page, shots, "keys")
        await page.click("nav >> text=Do not call")
        await page.fill("form[action='/dashboard/dnc'] input[name=phone]", "+14155550777")
        await page.click("form[action='/dashboard/dnc'] button")
        await page.wait_for_selector("p.notice")
        await page.fill("form[action='/dashboard/dnc/check'] input[name=phone]", "+14155550777")
        await page.click("form[action='/dashboard/dnc/check'] >> text=Check")
        await page.wait_for_selector("#dnc-result")
        assert "on the list" in await page.inner_text("#dnc-result")
        await _shot(page, shots, "dnc")
        repo = await h.cp.repository()
        assert [n.number for n in await repo.list_phone_numbers(org.id)] == ["+14155550100"]


async def test_a_call_through_the_telnyx_emulator_goes_live_and_is_hung_up_from_the_browser(tmp_path, shots):
    from aiohttp.test_utils import TestClient, TestServer, unused_port

    from bench.telnyx_emulator import start_emulator
    from control_plane.app import CONTROL_PLANE_KEY, create_app
    from control_plane.auth import issue_api_key

    emulator = await start_emulator(time_scale=0.01)
    port = unused_port()
    settings = make_settings(tmp_path, telnyx_api_key=emulator.api_key, telnyx_api_base=emulator.base_url,
                             telnyx_public_key=emulator.public_key_b64, server={"public_url": f"http://127.0.0.1:{port}"},
                             webhooks={"poll_interval_s": 0.05}, dashboard={"live_interval_s": 0.1})
    try:
        async with TestClient(TestServer(create_app(settings), port=port)) as client, browser() as chromium:
            repo = await client.app[CONTROL_PLANE_KEY].repository()
            org = await repo.create_organisation("e2e")
            _, secret = await issue_api_key(repo, org.id, "e2e")
            base = f"http://127.0.0.1:{port}"
            page = await _signed_in_page(chromium, base, secret)
            await page.wait_for_selector("#live-state.on")
            started = await (await client.post("/api/calls/start", headers={"Authorization": f"Bearer {secret}"},
                                               json={"to": "+14155550123", "from": "+14155550100"})).json()
            row = f'#live-rows tr[data-call-id="{started["call_id"]}"]'
            await page.wait_for_selector(f"{row} .status-answered", timeout=WAIT_MS)  # Telnyx's call.answered
            await _shot(page, shots, "emulator-call-live")
            await page.click(f"{row} button")
            await page.wait_for_url("**/dashboard/calls?notice=hangup")
            ended = f'#ended-rows tr[data-call-id="{started["call_id"]}"]'
            await page.wait_for_selector(ended, timeout=WAIT_MS)  # the emulator's call.hangup webhook
            assert "completed" in await page.inner_text(ended)
            assert await page.locator(row).count() == 0
            detail = await (await client.get(f"/api/calls/{started['call_id']}",
                                             headers={"Authorization": f"Bearer {secret}"})).json()
            assert (detail["hangup_cause"], detail["hangup_source"]) == ("normal_clearing", "caller")  # our hangup
            await _shot(page, shots, "emulator-call-ended")
    finally:
        await emulator.close()


async def test_organisation_settings_are_edited_with_the_refusal_next_to_its_field(tmp_path, shots):
    settings = make_settings(tmp_path, tools={"tenant_allowable_networks": ["10.0.0.0/8"]})
    async with harness(settings) as h, browser() as chromium:
        org, headers = await h.org("Acme Dental")
        page = await _signed_in_page(chromium, _base(h), secret_of(headers))
        await page.click("nav >> text=Organisation")
        await page.wait_for_selector("#org-settings")
        assert str(org.id) in await page.inner_text("#org-facts")
        await page.select_option("#record_calls", "on")
        await page.fill("#tool_allowed_destinations", "crm.internal\nhttp://not a host/")
        await page.click("#org-settings button[type=submit]")
        await page.wait_for_selector("#error-tool_allowed_destinations")
        assert "#2 is neither" in await page.inner_text("#error-tool_allowed_destinations")
        assert await page.get_attribute("#tool_allowed_destinations", "aria-invalid") == "true"
        assert await page.input_value("#record_calls") == "on"  # the field that was fine is kept
        await _shot(page, shots, "organisation-refused")
        await page.fill("#tool_allowed_destinations", "crm.internal\n10.20.0.0/16")
        await page.click("#org-settings button[type=submit]")
        await page.wait_for_selector("p.notice >> text=Organisation settings saved.")
        assert await page.input_value("#tool_allowed_destinations") == "crm.internal\n10.20.0.0/16"
        await _shot(page, shots, "organisation")
        api = await (await h.client.get("/api/organisation", headers=headers)).json()
        assert api["settings"] == {"record_calls": True, "tool_allowed_destinations": ["crm.internal", "10.20.0.0/16"]}


async def test_a_campaign_with_every_setting_from_the_form_then_paused_resumed_and_cancelled(tmp_path, shots):
    async with harness(make_settings(tmp_path, campaigns={"dialer": False})) as h, browser() as chromium:
        _, headers = await h.org()
        contacts = tmp_path / "contacts.csv"
        contacts.write_text("phone,name,topic\n+14155550201,Ann,cleaning\n555,Bad,x\n+14155550202,Bo,whitening\n"
                            "+14155550201,Ann twice,x\n")
        page = await _signed_in_page(chromium, _base(h), secret_of(headers))
        await page.click("nav >> text=Campaigns")
        form = page.locator("#new-campaign")
        for selector, value in (("#name", "spring recall"), ("#personality", "professional"),
                                ("#system_prompt", "You call {name} about their {topic}."),
                                ("#first_message", "Hi {name}, Bright Smiles here."),
                                ("#caller_numbers", "+14155550100 +14155550101"), ("#calls_per_minute", "6"),
                                ("#max_concurrent_calls", "3"), ("#window_start", "09:00"), ("#window_end", "17:30"),
                                ("#window_timezone", "America/Chicago"), ("#retry_max_attempts", "2"),
                                ("#retry_backoff_min", "15"), ("#voicemail_message", "Hi {name}, call us back.")):
            await form.locator(selector).fill(value)
        for day in ("sat", "sun"):
            await form.locator(f"#window_days input[value={day}]").uncheck()
        await form.locator("#retry_on input[value=failed]").uncheck()
        await form.locator("#voicemail_action").select_option("message")
        await form.locator("#voicemail_language").select_option("en-US")
        await form.locator("#contacts").set_input_files(str(contacts))
        await _shot(page, shots, "campaign-form")
        # First with the time zone mistyped: the error is beside it, the rest stays filled in.
        await form.locator("#window_timezone").fill("America/Chicag")
        await form.locator("button[type=submit]").click()
        await page.wait_for_selector("#error-window_timezone")
        assert await page.input_value("#system_prompt") == "You call {name} about their {topic}."
        assert not await page.is_checked("#window_days input[value=sat]")
        await _shot(page, shots, "campaign-form-refused")
        await page.fill("#window_timezone", "America/Chicago")
        await page.set_input_files("#contacts", str(contacts))
        await page.click("#new-campaign button[type=submit]")
        await page.wait_for_selector("#created-report")
        report = await page.inner_text("#created-report")
        assert "2 contacts added" in report and "2 rejected" in report
        assert await page.locator("#rejected-rows tbody tr").count() == 2
        assert (await page.inner_text("#rejected-rows tbody tr:first-child")).startswith("3")
        await _shot(page, shots, "campaign-rejected-rows")
        (campaign,) = (await (await h.client.get("/api/campaigns", headers=headers)).json())["data"]
        detail = await (await h.client.get(f"/api/campaigns/{campaign['id']}", headers=headers)).json()
        config = detail["config"]
        assert config["window"]["days"] == ["mon", "tue", "wed", "thu", "fri"]
        assert config["retry"]["on"] == ["busy", "no_answer"] and config["voicemail"]["language"] == "en-US"
        assert detail["agent_config"]["system_prompt"] == "You call {name} about their {topic}."
        row = f'tr[data-campaign-id="{campaign["id"]}"]'
        for action, state in (("Start", "running"), ("Pause", "paused"), ("Resume", "running"),
                              ("Cancel", "cancelled")):
            await page.click(f"{row} >> text={action}")
            await page.wait_for_selector(f"{row} .status-{state}")
        assert await page.locator(f"{row} button").count() == 0
        await _shot(page, shots, "campaign-cancelled")
        phone = await _signed_in_page(chromium, _base(h), secret_of(headers),
                                      viewport={"width": 390, "height": 844}, is_mobile=True)
        await phone.goto(f"{_base(h)}/dashboard/campaigns")
        await phone.wait_for_selector("#new-campaign")
        assert await phone.evaluate("document.querySelector('#new-campaign').scrollWidth") <= 390
        await _shot(phone, shots, "campaign-form-phone")


async def test_the_new_pages_show_only_the_signed_in_organisation(tmp_path, shots):
    async with harness(make_settings(tmp_path, campaigns={"dialer": False})) as h, browser() as chromium:
        _, headers_a = await h.org("A")
        await h.client.post("/api/numbers", headers=headers_a, json={
            "number": "+14155550300", "agent_config": {"personality": "sales", "first_message": "A-secret-greeting"}})
        await h.client.patch("/api/organisation/settings", headers=headers_a,
                             json={"tool_allowed_destinations": ["a-secret.internal"]})
        created = await (await h.client.post("/api/campaigns", headers=headers_a, json={
            "name": "a-secret-campaign", "agent_config": {"personality": "friendly"},
            "caller_numbers": ["+14155550300"]})).json()
        _, headers_b = await h.org("B")
        page = await _signed_in_page(chromium, _base(h), secret_of(headers_b))
        for nav, absent in (("Numbers", "A-secret-greeting"), ("Organisation", "a-secret.internal"),
                            ("Campaigns", "a-secret-campaign")):
            await page.click(f"nav >> text={nav}")
            await page.wait_for_load_state()
            assert absent not in await page.content(), nav
        assert await page.inner_text("header .org") == "B"
        await _shot(page, shots, "other-org-numbers-empty")
        # Org B's own form posting at org A's campaign: the page says no such campaign.
        await page.click("nav >> text=Campaigns")
        await page.evaluate(f"""() => {{ const f = document.createElement('form'); f.method = 'post';
            f.action = '/dashboard/campaigns/{created["id"]}/start';
            const t = document.querySelector('input[name=csrf_token]').cloneNode(); f.appendChild(t);
            document.body.appendChild(f); f.submit(); }}""")
        await page.wait_for_selector("text=no such campaign")
        api = await (await h.client.get(f"/api/campaigns/{created['id']}", headers=headers_a)).json()
        assert api["status"] == "draft"
        # Org B registering org A's number: refused as taken (whose is not said), and A keeps it.
        await page.click("nav >> text=Numbers")
        await page.fill("#number", "+14155550300")
        await page.click("#new-number button[type=submit]")
        await page.wait_for_selector("#error-number")
        assert "already registered" in await page.inner_text("#error-number")
        numbers_a = await (await h.client.get("/api/numbers", headers=headers_a)).json()
        assert [n["number"] for n in numbers_a["data"]] == ["+14155550300"]


async def test_a_numbers_agent_is_changed_from_its_page(tmp_path, shots):
    async with harness(make_settings(tmp_path)) as h, browser() as chromium:
        org, headers = await h.org()
        await h.client.post("/api/numbers", headers=headers, json={
            "number": "+14155550100", "agent_config": {"personality": "professional", "tools": ["end_call"]}})
        page = await _signed_in_page(chromium, _base(h), secret_of(headers))
        await page.click("nav >> text=Numbers")
        await page.click("#number-list >> text=+14155550100")
        await page.wait_for_selector("#edit-number")
        assert await page.input_value("#personality") == "professional"
        assert "tools" in await page.inner_text("#kept-keys")
        await page.fill("#personality", "sales")
        await page.fill("#first_message", "Hi, it's Bright Smiles!")
        await page.select_option("#record", "on")
        await _shot(page, shots, "number-edit")
        await page.click("#edit-number button[type=submit]")
        await page.wait_for_selector("p.notice >> text=Number updated")
        assert "Bright Smiles" in await page.inner_text('#number-list tr[data-number="+14155550100"]')
        repo = await h.cp.repository()
        assert (await repo.list_phone_numbers(org.id))[0].agent_config == {
            "tools": ["end_call"], "personality": "sales", "first_message": "Hi, it's Bright Smiles!", "record": True}
