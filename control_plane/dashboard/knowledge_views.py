"""The knowledge-base pages (issue 20): the organisation's bases, and one base's documents.

Creating, deleting and uploading go through the same service as the REST API
(``KnowledgeService.create_base`` / ``ingest``, ``KnowledgeStore.delete_base`` /
``delete_document``), so every rule and limit is the API's. A base is found by the signed-in
organisation and its id, so another organisation's base is a 404. Documents are uploaded as
``multipart/form-data`` streamed part by part (the CSRF token first, then the files), each file
read up to ``knowledge.max_document_bytes``; the page then lists what each file became (its
passages) or why it was refused. ``static/knowledge.js`` shows the upload's progress.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from aiohttp import BodyPartReader, web

from ..errors import ApiError
from ..knowledge.models import KnowledgeBase
from ..knowledge.service import KnowledgeError
from ..store import Conflict
from ..store.repository import Repository
from .auth import CSRF_FIELD, same_token
from .forms import FormData, FormRefused
from .pages import dashboard_of, form_field, page, viewer_of

MAX_DESCRIPTION = 1000
MAX_FILES = 20
"""Files in one upload: each is ingested in turn while the request waits."""
READ_CHUNK = 256 * 1024
KINDS = {"text": "text", "markdown": "Markdown", "html": "HTML", "pdf": "PDF"}


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "this organisation has no such knowledge base")


async def _repo(request: web.Request) -> Repository:
    return await dashboard_of(request).cp.repository()


async def _own_base(request: web.Request) -> tuple[Repository, KnowledgeBase]:
    """The signed-in organisation's base named by the path's id (any other is a 404)."""
    try:
        kb_id = UUID(request.match_info["kb"])
    except ValueError:
        raise _not_found() from None
    repo = await _repo(request)
    kb = await dashboard_of(request).cp.knowledge.store(repo).get_base(viewer_of(request).org.id, str(kb_id))
    if kb is None or kb.id != kb_id:
        raise _not_found()
    return repo, kb


# -- the list of bases --------------------------------------------------------------------------------


async def _bases_page(request: web.Request, *, refused: FormRefused | None = None,
                      submitted: FormData | None = None, status: int = 200) -> web.Response:
    repo = await _repo(request)
    bases = await dashboard_of(request).cp.knowledge.store(repo).list_bases(viewer_of(request).org.id)
    bad = refused.fields if refused else {}
    values = {name: submitted.get(name) for name in ("name", "description")
              if submitted is not None and name not in bad}
    return page(request, "knowledge.html", {
        "bases": bases, "error": str(refused) if refused else None, "field_errors": bad, "values": values,
    }, status=status)


async def knowledge(request: web.Request) -> web.Response:
    return await _bases_page(request)


async def create_base(request: web.Request) -> web.Response:
    dash, viewer = dashboard_of(request), viewer_of(request)
    form = FormData.of(await request.post())
    name, description = form.get("name"), form.get("description")
    try:
        if len(description) > MAX_DESCRIPTION:
            raise FormRefused("check these fields: description",
                              fields={"description": f"at most {MAX_DESCRIPTION} characters"})
        try:
            kb = await dash.cp.knowledge.create_base(await _repo(request), viewer.org.id, name, description)
        except KnowledgeError as exc:
            raise FormRefused(f"Name: {exc}.", fields={"name": str(exc)}) from None
        except Conflict:
            raise FormRefused("There is already a knowledge base of that name.",
                              409, {"name": "already used by another knowledge base"}) from None
    except FormRefused as exc:
        return await _bases_page(request, refused=exc, submitted=form, status=exc.status)
    raise web.HTTPSeeOther(f"/dashboard/knowledge/{kb.id}?notice=kb_created")


async def delete_base(request: web.Request) -> web.Response:
    repo, kb = await _own_base(request)
    await dashboard_of(request).cp.knowledge.store(repo).delete_base(viewer_of(request).org.id, kb.id)
    raise web.HTTPSeeOther("/dashboard/knowledge?notice=kb_deleted")


# -- one base and its documents -----------------------------------------------------------------------


async def _base_page(request: web.Request, repo: Repository, kb: KnowledgeBase, *,
                     results: list[dict[str, Any]] | None = None, error: str | None = None,
                     status: int = 200) -> web.Response:
    dash = dashboard_of(request)
    store = dash.cp.knowledge.store(repo)
    documents = await store.list_documents(viewer_of(request).org.id, kb.id)
    return page(request, "knowledge_base.html", {
        "kb": kb, "documents": documents, "results": results, "error": error, "kinds": KINDS,
        "max_bytes": dash.cp.settings.knowledge.max_document_bytes,
        "passages": sum(d.chunks for d in documents),
    }, status=status)


async def knowledge_base(request: web.Request) -> web.Response:
    repo, kb = await _own_base(request)
    return await _base_page(request, repo, kb)


async def remove_document(request: web.Request) -> web.Response:
    repo, kb = await _own_base(request)
    name = form_field(await request.post(), "name") or ""
    if not await dashboard_of(request).cp.knowledge.store(repo).delete_document(viewer_of(request).org.id, kb.id,
                                                                                name):
        raise ApiError(404, "not_found", "this knowledge base has no such document")
    raise web.HTTPSeeOther(f"/dashboard/knowledge/{kb.id}?notice=document_removed")


async def _read_file(part: BodyPartReader, limit: int) -> bytes | None:
    """The file's bytes, or ``None`` once it is larger than ``limit`` (the rest is not kept)."""
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


async def _token(part: BodyPartReader) -> str | None:
    data = bytearray()
    while chunk := await part.read_chunk(256):
        data += chunk
        if len(data) > 256:
            return None
    return data.decode(errors="replace")


async def upload_documents(request: web.Request) -> web.Response:
    """``multipart/form-data``: the CSRF token first (the form's order), then the ``documents``
    files, each ingested as it arrives; the page lists each file's result."""
    dash, viewer = dashboard_of(request), viewer_of(request)
    repo, kb = await _own_base(request)
    limit = dash.cp.settings.knowledge.max_document_bytes
    results: list[dict[str, Any]] = []
    status = 201
    if request.content_type != "multipart/form-data":
        return await _base_page(request, repo, kb, error="Send the form as multipart/form-data.", status=415)
    reader = await request.multipart()
    token: str | None = None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):  # a nested multipart: no browser sends one
            return await _base_page(request, repo, kb, results=results, status=400,
                                    error="Send each file as a plain part, not a nested multipart.")
        if part.name == CSRF_FIELD and token is None:
            token = await _token(part)
            continue
        if not same_token(token, viewer.session.csrf_token):
            raise ApiError(403, "csrf", "This form is out of date or did not come from the dashboard; "
                                        "reload the page and try again.")
        if part.name != "documents":
            await part.release()
            continue
        if len(results) >= MAX_FILES:
            results.append({"name": part.filename or "(a file)", "error": f"at most {MAX_FILES} files per upload"})
            status = 413
            break
        name = (part.filename or "").strip()
        data = await _read_file(part, limit)
        if not name and not data:  # the file input left empty
            continue
        if data is None:
            results.append({"name": name, "error": f"larger than {limit:,} bytes"})
            status = 413
            break  # the rest of this file is still on the wire: stop reading the request
        content_type = part.headers.get("Content-Type")
        if content_type and content_type.split(";", 1)[0].strip().lower() == "application/octet-stream":
            content_type = None  # "some bytes": go by the name
        if not data:
            results.append({"name": name, "error": "the file is empty"})
            status = max(status, 422)
            continue
        try:
            doc = await dash.cp.knowledge.ingest(repo, viewer.org.id, str(kb.id), name, data,
                                                 content_type=content_type)
        except KnowledgeError as exc:
            results.append({"name": name, "error": str(exc)})
            status = max(status, 422)
            continue
        except LookupError:  # the base was deleted meanwhile
            raise _not_found() from None
        results.append({"name": doc.name, "doc": doc})
    if token is None:
        raise ApiError(403, "csrf", "This form is out of date or did not come from the dashboard; "
                                    "reload the page and try again.")
    if not results:
        return await _base_page(request, repo, kb, error="Choose one or more files to upload.", status=400)
    response = await _base_page(request, repo, kb, results=results, status=status)
    if status == 413:
        response.force_close()  # the refused file's remaining bytes are not read
    return response


# -- attaching bases to an agent (the number and campaign forms) ----------------------------------------


async def base_choices(request: web.Request) -> list[KnowledgeBase]:
    """The organisation's bases, for the agent forms' knowledge checkboxes."""
    repo = await _repo(request)
    return await dashboard_of(request).cp.knowledge.store(repo).list_bases(viewer_of(request).org.id)


def picked(config: Mapping[str, Any], bases: Sequence[KnowledgeBase]) -> list[str]:
    """The ids of the bases an agent config names (by id or, set over the API, by name)."""
    refs = set(config.get("knowledge_bases") or ())
    return [str(kb.id) for kb in bases if str(kb.id) in refs or kb.name in refs]


async def check_bases(request: web.Request, config: dict[str, Any]) -> None:
    """Refuse ticked bases that are not the organisation's (a forged form, or deleted meanwhile)."""
    wanted = config.get("knowledge_bases")
    if not wanted:
        return
    own = {str(kb.id) for kb in await base_choices(request)}
    if any(ref not in own for ref in wanted):
        raise FormRefused("check these fields: knowledge bases", 422,
                          {"knowledge_bases": "not one of this organisation's knowledge bases"})
