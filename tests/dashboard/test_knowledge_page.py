"""The knowledge pages over HTTP: bases created and deleted, documents uploaded (each file's result
or refusal on the page), removed, attached to a number's agent; another organisation's base is a
404 everywhere, and a form without the session's CSRF token changes nothing."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from aiohttp import FormData

from bench.pdfgen import make_pdf
from tests.control_plane.conftest import make_settings
from tests.control_plane.fakes import harness

from .helpers import secret_of, session_token, sign_in

HOURS = b"# Opening hours\n\nThe depot opens at 7 on Saturdays and closes at noon.\n"


async def _signed_in(h: Any, name: str = "Org") -> tuple[Any, dict[str, str], str]:
    org, headers = await h.org(name)
    assert (await sign_in(h.client, secret_of(headers))).status == 303
    return org, headers, await session_token(h.client)


async def _create(h: Any, token: str, name: str) -> str:
    created = await h.client.post("/dashboard/knowledge", data={"csrf_token": token, "name": name},
                                  allow_redirects=False)
    assert created.status == 303, await created.text()
    match = re.fullmatch(r"/dashboard/knowledge/([0-9a-f-]{36})\?notice=kb_created", created.headers["Location"])
    assert match
    return match.group(1)


def _upload(token: str | None, *files: tuple[str, bytes, str]) -> FormData:
    form = FormData(default_to_multipart=True)
    if token is not None:
        form.add_field("csrf_token", token)
    for name, data, content_type in files:
        form.add_field("documents", data, filename=name, content_type=content_type)
    return form


async def test_a_base_is_created_filled_searched_emptied_and_deleted(h):
    org, headers, token = await _signed_in(h)
    kb_id = await _create(h, token, "support <faq>")
    page = await (await h.client.get(f"/dashboard/knowledge/{kb_id}?notice=kb_created")).text()
    assert "support &lt;faq&gt;" in page and "Knowledge base created" in page and "No documents yet." in page
    pdf = make_pdf([["Warranty", "Every kettle carries a two year warranty against defects."]])
    uploaded = await h.client.post(f"/dashboard/knowledge/{kb_id}/documents", data=_upload(
        token, ("hours.md", HOURS, "text/markdown"), ("warranty.pdf", pdf, "application/pdf")))
    assert uploaded.status == 201, await uploaded.text()
    text = await uploaded.text()
    assert re.search(r"hours\.md: added, 1 passage from [\d,]+ characters \(Markdown\)", text)
    assert re.search(r"warranty\.pdf: added, \d+ passages? from [\d,]+ characters \(PDF\)", text)
    assert 'data-document="hours.md"' in text and 'data-document="warranty.pdf"' in text
    # What the agent would be given: the same base through the API.
    hits = await (await h.client.post(f"/api/knowledge-bases/{kb_id}/search", json={"query": "kettle warranty"},
                                      headers=headers)).json()
    assert hits["data"][0]["source"] == "warranty.pdf"
    # The list shows the counts; removing a document takes its passages.
    listing = await (await h.client.get("/dashboard/knowledge")).text()
    assert f'data-kb-id="{kb_id}"' in listing
    removed = await h.client.post(f"/dashboard/knowledge/{kb_id}/documents/remove",
                                  data={"csrf_token": token, "name": "warranty.pdf"}, allow_redirects=False)
    assert removed.status == 303 and removed.headers["Location"].endswith("?notice=document_removed")
    hits = await (await h.client.post(f"/api/knowledge-bases/{kb_id}/search", json={"query": "kettle warranty"},
                                      headers=headers)).json()
    assert hits["data"] == []
    missing = await h.client.post(f"/dashboard/knowledge/{kb_id}/documents/remove",
                                  data={"csrf_token": token, "name": "warranty.pdf"})
    assert missing.status == 404
    deleted = await h.client.post(f"/dashboard/knowledge/{kb_id}/delete", data={"csrf_token": token},
                                  allow_redirects=False)
    assert deleted.status == 303 and deleted.headers["Location"] == "/dashboard/knowledge?notice=kb_deleted"
    assert await h.cp.knowledge.store(await h.cp.repository()).list_bases(org.id) == []
    assert (await h.client.get(f"/dashboard/knowledge/{kb_id}")).status == 404


async def test_bad_names_and_duplicates_are_refused_beside_the_field(h):
    _, _, token = await _signed_in(h)
    await _create(h, token, "faq")
    again = await h.client.post("/dashboard/knowledge", data={"csrf_token": token, "name": "faq",
                                                              "description": "kept as typed"})
    assert again.status == 409
    text = await again.text()
    assert 'id="error-name"' in text and "kept as typed" in text
    a_uuid = await h.client.post("/dashboard/knowledge", data={"csrf_token": token, "name": str(uuid.uuid4())})
    assert a_uuid.status == 400 and "must not be a UUID" in await a_uuid.text()
    long = await h.client.post("/dashboard/knowledge", data={"csrf_token": token, "name": "x",
                                                             "description": "d" * 1001})
    assert long.status == 400 and 'id="error-description"' in await long.text()


async def test_unreadable_files_are_named_with_the_reason_and_the_good_ones_kept(h):
    org, _, token = await _signed_in(h)
    kb_id = await _create(h, token, "docs")
    response = await h.client.post(f"/dashboard/knowledge/{kb_id}/documents", data=_upload(
        token, ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "application/pdf"),
        ("latin1.txt", "café crème".encode("latin-1"), "text/plain"),
        ("empty.txt", b"", "text/plain"),
        ("hours.md", HOURS, "application/octet-stream")))  # octet-stream: the name says Markdown
    assert response.status == 422
    text = await response.text()
    assert "broken.pdf: not added: the PDF cannot be read" in text
    assert "latin1.txt: not added: the document is not UTF-8 text" in text
    assert "empty.txt: not added: the file is empty" in text
    assert re.search(r"hours\.md: added, 1 passage", text)
    assert "Traceback" not in text
    docs = await h.cp.knowledge.store(await h.cp.repository()).list_documents(org.id, uuid.UUID(kb_id))
    assert [(d.name, d.content_type) for d in docs] == [("hours.md", "markdown")]
    nothing = await h.client.post(f"/dashboard/knowledge/{kb_id}/documents", data=_upload(token))
    assert nothing.status == 400 and "Choose one or more files" in await nothing.text()
    not_multipart = await h.client.post(f"/dashboard/knowledge/{kb_id}/documents", data={"csrf_token": token})
    assert not_multipart.status == 415


async def test_a_file_over_the_limit_is_refused_with_413_and_nothing_stored(tmp_path: Path):
    async with harness(make_settings(tmp_path, knowledge={"max_document_bytes": 4096})) as h:
        org, _, token = await _signed_in(h)
        kb_id = await _create(h, token, "docs")
        response = await h.client.post(f"/dashboard/knowledge/{kb_id}/documents", data=_upload(
            token, ("big.txt", b"word " * 2000, "text/plain")))
        assert response.status == 413
        assert "big.txt: not added: larger than 4,096 bytes" in await response.text()
        assert await h.cp.knowledge.store(await h.cp.repository()).list_documents(org.id, uuid.UUID(kb_id)) == []


async def test_another_organisations_base_is_not_found_and_forms_need_the_token(h):
    org_a, _, token_a = await _signed_in(h, "A")
    kb_a = await _create(h, token_a, "a-private-base")
    await h.client.post(f"/dashboard/knowledge/{kb_a}/documents", data=_upload(token_a, ("hours.md", HOURS,
                                                                                         "text/markdown")))
    h.client.session.cookie_jar.clear()
    org_b, _, token_b = await _signed_in(h, "B")
    listing = await (await h.client.get("/dashboard/knowledge")).text()
    assert "a-private-base" not in listing and "No knowledge bases yet." in listing
    assert (await h.client.get(f"/dashboard/knowledge/{kb_a}")).status == 404
    assert (await h.client.get("/dashboard/knowledge/not-a-uuid")).status == 404
    assert (await h.client.get("/dashboard/knowledge/a-private-base")).status == 404  # ids only, never names
    for path, data in ((f"/dashboard/knowledge/{kb_a}/delete", {"csrf_token": token_b}),
                       (f"/dashboard/knowledge/{kb_a}/documents/remove", {"csrf_token": token_b, "name": "hours.md"})):
        assert (await h.client.post(path, data=data)).status == 404
    upload = await h.client.post(f"/dashboard/knowledge/{kb_a}/documents",
                                 data=_upload(token_b, ("x.md", HOURS, "text/markdown")))
    assert upload.status == 404
    # B's own base: without the CSRF token (or with A's) nothing is stored.
    kb_b = await _create(h, token_b, "b-base")
    for token in (None, token_a):
        forged = await h.client.post(f"/dashboard/knowledge/{kb_b}/documents",
                                     data=_upload(token, ("x.md", HOURS, "text/markdown")))
        assert forged.status == 403
    assert (await h.client.post(f"/dashboard/knowledge/{kb_b}/delete", data={})).status == 403
    assert (await h.client.post("/dashboard/knowledge", data={"name": "forged"})).status == 403
    store = h.cp.knowledge.store(await h.cp.repository())
    assert [kb.name for kb in await store.list_bases(org_b.id)] == ["b-base"]
    assert await store.list_documents(org_b.id, uuid.UUID(kb_b)) == []
    # A's base and document are untouched.
    assert [d.name for d in await store.list_documents(org_a.id, uuid.UUID(kb_a))] == ["hours.md"]


async def test_a_numbers_agent_gets_its_organisations_bases_only(h):
    org, _, token = await _signed_in(h)
    kb_id = await _create(h, token, "faq")
    _, other_headers = await h.org("other")
    theirs = await (await h.client.post("/api/knowledge-bases", json={"name": "theirs"},
                                        headers=other_headers)).json()
    page = await (await h.client.get("/dashboard/numbers")).text()
    assert f'name="knowledge_bases" value="{kb_id}"' in page and theirs["id"] not in page
    added = await h.client.post("/dashboard/numbers", data={"csrf_token": token, "number": "+14155550100",
                                                            "record": "", "knowledge_bases": kb_id},
                                allow_redirects=False)
    assert added.status == 303, await added.text()
    repo = await h.cp.repository()
    assert (await repo.list_phone_numbers(org.id))[0].agent_config == {"knowledge_bases": [kb_id]}
    assert "knowledge: faq" in await (await h.client.get("/dashboard/numbers")).text()
    detail = await (await h.client.get("/dashboard/numbers/%2B14155550100")).text()
    assert re.search(rf'value="{kb_id}" checked', detail)
    forged = await h.client.post("/dashboard/numbers", data={"csrf_token": token, "number": "+14155550101",
                                                             "record": "", "knowledge_bases": theirs["id"]})
    assert forged.status == 422 and 'id="error-knowledge_bases"' in await forged.text()
    assert [n.number for n in await repo.list_phone_numbers(org.id)] == ["+14155550100"]
    # Unticking every base on the number's page detaches them.
    updated = await h.client.post("/dashboard/numbers/%2B14155550100", data={"csrf_token": token, "record": ""},
                                  allow_redirects=False)
    assert updated.status == 303
    assert (await repo.list_phone_numbers(org.id))[0].agent_config == {}


async def test_a_campaigns_agent_gets_its_organisations_bases_only(tmp_path: Path):
    from .test_campaigns_page import _form

    async with harness(make_settings(tmp_path, campaigns={"dialer": False})) as h:
        org, _, token = await _signed_in(h)
        kb_id = await _create(h, token, "faq")
        _, other_headers = await h.org("other")
        theirs = await (await h.client.post("/api/knowledge-bases", json={"name": "theirs"},
                                            headers=other_headers)).json()
        page = await (await h.client.get("/dashboard/campaigns")).text()
        assert f'name="knowledge_bases" value="{kb_id}"' in page and theirs["id"] not in page
        forged = await h.client.post("/dashboard/campaigns", data=_form(token, pairs=(("knowledge_bases",
                                                                                      theirs["id"]),)))
        assert forged.status == 422 and 'id="error-knowledge_bases"' in await forged.text()
        store = await h.cp.campaigns.store()
        assert await store.list(org.id, limit=10) == []
        created = await h.client.post("/dashboard/campaigns", data=_form(token, pairs=(("knowledge_bases", kb_id),)))
        assert created.status == 201, await created.text()
        (campaign,) = await store.list(org.id, limit=10)
        assert campaign.agent_config["knowledge_bases"] == [kb_id]
