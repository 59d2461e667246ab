"""REST handlers for knowledge bases and their documents (issue 20).

A document is uploaded with ``PUT .../documents/{name}``: the body is the file itself, its
``Content-Type`` (or the name's extension) says what it is (text, Markdown, HTML, PDF). PUT
because the name is the document's identity: uploading it again replaces it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..context import control_plane as _cp
from ..errors import ApiError, body_chunks, json_response, read_json
from ..knowledge.models import Document, KnowledgeBase
from ..knowledge.service import KnowledgeError
from ..store import Conflict
from ..store.repository import Repository
from .handlers import _org

UPLOAD_CHUNK = 256 * 1024


class CreateKnowledgeBaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200, description="Unique in the organisation; agents name it in "
                                                                  "agent_config.knowledge_bases.")
    description: str = Field("", max_length=1000)


class KnowledgeBaseOut(BaseModel):
    id: UUID
    name: str
    description: str
    created_at: datetime
    documents: int
    chunks: int


class KnowledgeBaseList(BaseModel):
    data: list[KnowledgeBaseOut]


class KnowledgeBaseDeleted(BaseModel):
    id: UUID
    deleted: bool = True


class DocumentOut(BaseModel):
    id: UUID
    name: str
    content_type: str = Field(description="text, markdown, html or pdf")
    sha256: str
    chars: int
    chunks: int
    embedded: bool
    created_at: datetime


class DocumentList(BaseModel):
    data: list[DocumentOut]


class DocumentDeleted(BaseModel):
    name: str
    deleted: bool = True


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(min_length=1, max_length=2000)
    limit: int = Field(3, ge=1, le=20)


class PassageOut(BaseModel):
    source: str
    text: str
    score: float


class SearchResult(BaseModel):
    data: list[PassageOut]


def _base_out(kb: KnowledgeBase) -> KnowledgeBaseOut:
    return KnowledgeBaseOut(id=kb.id, name=kb.name, description=kb.description, created_at=kb.created_at,
                            documents=kb.documents, chunks=kb.chunks)


def _doc_out(doc: Document) -> DocumentOut:
    return DocumentOut(id=doc.id, name=doc.name, content_type=doc.content_type, sha256=doc.sha256, chars=doc.chars,
                       chunks=doc.chunks, embedded=doc.embedded, created_at=doc.created_at)


async def _base(request: web.Request) -> tuple[Repository, KnowledgeBase]:
    cp = _cp(request)
    repo = await cp.repository()
    kb = await cp.knowledge.store(repo).get_base(_org(request).id, request.match_info["kb"])
    if kb is None:
        raise ApiError(404, "not_found", "this organisation has no such knowledge base")
    return repo, kb


async def create_base(request: web.Request) -> web.Response:
    body = await read_json(request, CreateKnowledgeBaseRequest)
    cp = _cp(request)
    repo = await cp.repository()
    try:
        kb = await cp.knowledge.create_base(repo, _org(request).id, body.name, body.description)
    except KnowledgeError as exc:
        raise ApiError(400, "validation_error", str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, "knowledge_base_exists", str(exc)) from None
    return json_response(_base_out(kb), status=201)


async def list_bases(request: web.Request) -> web.Response:
    cp = _cp(request)
    bases = await cp.knowledge.store(await cp.repository()).list_bases(_org(request).id)
    return json_response(KnowledgeBaseList(data=[_base_out(kb) for kb in bases]))


async def delete_base(request: web.Request) -> web.Response:
    repo, kb = await _base(request)
    await _cp(request).knowledge.store(repo).delete_base(_org(request).id, kb.id)
    return json_response(KnowledgeBaseDeleted(id=kb.id))


async def list_documents(request: web.Request) -> web.Response:
    repo, kb = await _base(request)
    docs = await _cp(request).knowledge.store(repo).list_documents(_org(request).id, kb.id)
    return json_response(DocumentList(data=[_doc_out(d) for d in docs]))


async def put_document(request: web.Request) -> web.Response:
    cp = _cp(request)
    repo, kb = await _base(request)
    limit = cp.settings.knowledge.max_document_bytes
    data = bytearray()
    async for chunk in body_chunks(request, UPLOAD_CHUNK):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, "payload_too_large", f"the document is larger than {limit} bytes",
                           headers={"Connection": "close"})
    if not data:
        raise ApiError(400, "empty_document", "the request body (the document) is empty")
    content_type = request.headers.get("Content-Type")
    if content_type and content_type.split(";", 1)[0].strip().lower() == "application/octet-stream":
        content_type = None  # "some bytes": go by the name
    try:
        doc = await cp.knowledge.ingest(repo, _org(request).id, str(kb.id), request.match_info["name"], bytes(data),
                                        content_type=content_type)
    except KnowledgeError as exc:
        raise ApiError(422, "unreadable_document", str(exc)) from None
    return json_response(_doc_out(doc), status=201)


async def delete_document(request: web.Request) -> web.Response:
    repo, kb = await _base(request)
    name = request.match_info["name"]
    if not await _cp(request).knowledge.store(repo).delete_document(_org(request).id, kb.id, name):
        raise ApiError(404, "not_found", "this knowledge base has no such document")
    return json_response(DocumentDeleted(name=name))


async def search(request: web.Request) -> web.Response:
    body = await read_json(request, SearchRequest)
    repo, kb = await _base(request)
    hits = await _cp(request).knowledge.search(repo, [kb.id], body.query, limit=body.limit)
    return json_response(SearchResult(data=[PassageOut(source=h.source, text=h.text, score=h.score) for h in hits]))
