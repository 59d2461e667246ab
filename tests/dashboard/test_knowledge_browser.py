"""The knowledge pages in a real headless Chromium (as tests/dashboard/test_browser.py): a base is
created, documents uploaded through the page's script (progress, then each file's result),
one removed, the base attached to a number's agent, and another organisation sees none of it."""

from __future__ import annotations

import pytest

from bench.pdfgen import make_pdf
from tests.control_plane.conftest import make_settings
from tests.control_plane.fakes import harness

from . import test_browser as b
from .helpers import secret_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a real Chromium against the running app
shots = b.shots


async def test_documents_are_uploaded_with_their_results_and_attached_to_a_number(tmp_path, shots):
    hours = tmp_path / "hours.md"
    hours.write_text("# Opening hours\n\nThe depot opens at 7 on Saturdays and closes at noon.\n")
    warranty = tmp_path / "warranty.pdf"
    warranty.write_bytes(make_pdf([["Warranty", "Every kettle carries a two year warranty against defects."]]))
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 not really a pdf")
    async with harness(make_settings(tmp_path)) as h, b.browser() as chromium:
        org, headers = await h.org("Acme Depot")
        _, other_headers = await h.org("Other")
        base = b._base(h)
        page = await b._signed_in_page(chromium, base, secret_of(headers))
        await page.click("nav >> text=Knowledge")
        await page.wait_for_selector("#kb-list >> text=No knowledge bases yet.")
        await page.fill("#name", "depot-faq")
        await page.fill("#description", "Opening hours and warranty")
        await page.click("#new-kb button[type=submit]")
        await page.wait_for_selector("p.notice >> text=Knowledge base created")
        assert await page.inner_text("#kb-name") == "depot-faq"

        await page.set_input_files("#documents", [str(hours), str(warranty), str(broken)])
        await page.click("#upload-documents button[type=submit]")
        # The script sends the form itself: the bar fills, then the answer replaces the page.
        await page.wait_for_selector("#upload-results", timeout=b.WAIT_MS)
        assert "/documents" not in page.url  # sent by the script (a plain form post lands on .../documents)
        results = await page.inner_text("#upload-results")
        assert "hours.md: added, 1 passage" in results and "(Markdown)" in results
        assert "warranty.pdf: added" in results and "(PDF)" in results
        assert "broken.pdf: not added: the PDF cannot be read" in results
        assert await page.locator("#document-list tr[data-document]").count() == 2
        await b._shot(page, shots, "knowledge-uploaded")

        await page.click('#document-list tr[data-document="warranty.pdf"] >> text=Remove')
        await page.wait_for_selector("p.notice >> text=Document removed")
        assert await page.locator("#document-list tr[data-document]").count() == 1
        kb_id = page.url.split("/dashboard/knowledge/")[1].split("?")[0]
        hits = await (await h.client.post(f"/api/knowledge-bases/{kb_id}/search", json={"query": "saturday depot"},
                                          headers=headers)).json()
        assert [hit["source"] for hit in hits["data"]] == ["hours.md"]

        await page.click("nav >> text=Knowledge")
        row = f'#kb-list tr[data-kb-id="{kb_id}"]'
        assert "depot-faq" in await page.inner_text(row)
        await b._shot(page, shots, "knowledge-list")

        await page.click("nav >> text=Numbers")
        await page.fill("input[name=number]", "+14155550100")
        await page.check("#knowledge_bases >> text=depot-faq")
        await page.click("#new-number button[type=submit]")
        await page.wait_for_selector("#number-list >> text=knowledge: depot-faq")
        repo = await h.cp.repository()
        assert (await repo.list_phone_numbers(org.id))[0].agent_config == {"knowledge_bases": [kb_id]}
        await b._shot(page, shots, "number-with-knowledge")

        other = await b._signed_in_page(chromium, base, secret_of(other_headers))
        await other.goto(base + "/dashboard/knowledge")
        assert "depot-faq" not in await other.inner_text("main")
        response = await other.goto(base + f"/dashboard/knowledge/{kb_id}")
        assert response is not None and response.status == 404

        await page.click("nav >> text=Knowledge")
        await page.click(f"{row} >> text=Delete")
        await page.wait_for_selector("p.notice >> text=Knowledge base deleted")
        assert await page.locator("#kb-list tr[data-kb-id]").count() == 0

