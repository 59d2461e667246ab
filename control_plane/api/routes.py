"""The REST API's one table of endpoints, from which the routes and the OpenAPI document are made."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from ..campaigns import api as campaigns
from ..campaigns.models import CampaignList, CampaignOut, ContactImportReport, CreateCampaignRequest
from ..errors import ErrorBody
from ..webhooks import api as webhooks
from ..webhooks.models import (
    CreateEndpointRequest,
    DeliveryDetail,
    DeliveryList,
    EndpointDeleted,
    EndpointList,
    EndpointOut,
    EndpointWithSecret,
    ListDeliveriesQuery,
    ReplayRequest,
    ReplayResult,
    UpdateEndpointRequest,
)
from . import export, handlers, knowledge, numbers, usage
from .schemas import (
    AddNumberRequest,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    CallDetail,
    CallList,
    CreateApiKeyRequest,
    DncAdded,
    DncAddRequest,
    DncImportResult,
    DncRemoved,
    DncStatus,
    EraseOrganisationQuery,
    ErasureReceipt,
    HangupResponse,
    ListCallsQuery,
    NumberList,
    NumberOut,
    NumberRemoved,
    OrganisationErasureReceipt,
    OrganisationOut,
    OrganisationSettingsPatch,
    StartCallRequest,
    StartCallResponse,
    ToolSigningSecret,
    UpdateNumberRequest,
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    operation_id: str
    summary: str
    tag: str
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    body_content_type: str = "application/json"
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    auth: bool = True
    extra_responses: dict[int, str] | None = None
    headers: tuple[dict[str, Any], ...] = ()
    """Request header parameters, as OpenAPI parameter objects."""


_UUID = {"type": "string", "format": "uuid"}
_PHONE = {"type": "string", "examples": ["+14155550123"], "description": "E.164 number (URL-encode the +)"}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/api/calls/start", handlers.start_call, "startCall", "Dial a number with an AI agent",
             "calls", StartCallResponse, 201, body=StartCallRequest,
             errors=(400, 401, 409, 413, 415, 422, 429, 502, 503),
             extra_responses={200: "Replayed: an earlier request with the same Idempotency-Key placed this call "
                                   "(header Idempotent-Replayed: true); nothing was dialed"},
             headers=({"name": handlers.IDEMPOTENCY_HEADER, "in": "header", "required": False,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                       "description": "Makes a retried start safe: the same key with the same body returns the "
                                      "call already placed (200) instead of dialing again; with another body, "
                                      "422 idempotency_key_reused; while the first is still dialing, 409 "
                                      "idempotency_key_in_flight. Scoped to the organisation."},)),
    Endpoint("GET", "/api/calls", handlers.list_calls, "listCalls", "List calls, newest first (cursor pagination)",
             "calls", CallList, query=ListCallsQuery, errors=(400, 401)),
    # Before /api/calls/{call_id}, which would otherwise take "export" for a call id.
    Endpoint("GET", "/api/calls/export", export.export_calls, "exportCalls",
             "Stream every call (turns, outcome, cost) as JSON Lines or CSV, newest first", "calls", None,
             query=export.ExportQuery, errors=(400, 401),
             extra_responses={200: "application/x-ndjson (one call per line) or text/csv (one call per row)"}),
    Endpoint("GET", "/api/calls/{call_id}", handlers.get_call, "getCall",
             "A call: status history, timings, turns with latency, summary, outcome, recording, cost",
             "calls", CallDetail, errors=(401, 404)),
    Endpoint("POST", "/api/calls/{call_id}/hangup", handlers.hangup_call, "hangupCall", "Hang up a call",
             "calls", HangupResponse, errors=(401, 404, 502, 503)),
    Endpoint("POST", "/api/keys", handlers.create_key, "createApiKey", "Create an API key (the secret is shown once)",
             "keys", ApiKeyCreated, 201, body=CreateApiKeyRequest, errors=(400, 401, 413, 415)),
    Endpoint("GET", "/api/keys", handlers.list_keys, "listApiKeys", "List the organisation's API keys", "keys",
             ApiKeyList, errors=(401,)),
    Endpoint("DELETE", "/api/keys/{key_id}", handlers.revoke_key, "revokeApiKey", "Revoke an API key", "keys",
             ApiKeyOut, errors=(401, 404, 409)),
    Endpoint("POST", "/api/dnc", handlers.add_dnc, "addDnc", "Add a number to the do-not-call list", "dnc",
             DncAdded, 201, body=DncAddRequest, errors=(400, 401, 413, 415),
             extra_responses={200: "already listed"}),
    Endpoint("POST", "/api/dnc/import", handlers.import_dnc, "importDnc", "Add numbers from a CSV file", "dnc",
             DncImportResult, body_content_type="text/csv", errors=(400, 401, 413, 415)),
    Endpoint("GET", "/api/dnc/{phone}", handlers.check_dnc, "checkDnc", "Is this number on the do-not-call list?",
             "dnc", DncStatus, errors=(400, 401)),
    Endpoint("DELETE", "/api/dnc/{phone}", handlers.remove_dnc, "removeDnc",
             "Remove a number from the do-not-call list", "dnc", DncRemoved, errors=(400, 401, 404)),
    Endpoint("DELETE", "/api/contacts/{phone}", handlers.erase_contact, "eraseContact",
             "Erase a phone number's personal data everywhere (GDPR) and get a receipt", "gdpr", ErasureReceipt,
             errors=(400, 401)),
    Endpoint("POST", "/api/numbers", numbers.add_number, "addNumber",
             "Register a number for inbound calls, with the agent that answers it", "numbers", NumberOut, 201,
             body=AddNumberRequest, errors=(400, 401, 409, 413, 415, 422)),
    Endpoint("GET", "/api/numbers", numbers.list_numbers, "listNumbers", "List the organisation's numbers",
             "numbers", NumberList, errors=(401,)),
    Endpoint("PUT", "/api/numbers/{phone}", numbers.update_number, "updateNumber",
             "Change the agent that answers a number (calls already up keep theirs)", "numbers", NumberOut,
             body=UpdateNumberRequest, errors=(400, 401, 404, 413, 415, 422)),
    Endpoint("DELETE", "/api/numbers/{phone}", numbers.remove_number, "removeNumber",
             "Stop answering a number (calls to it are then rejected)", "numbers", NumberRemoved,
             errors=(400, 401, 404)),
    Endpoint("GET", "/api/organisation", numbers.get_organisation, "getOrganisation",
             "The organisation of the API key, with its settings", "organisation", OrganisationOut,
             errors=(401,)),
    Endpoint("DELETE", "/api/organisation", numbers.erase_organisation, "eraseOrganisation",
             "Erase the organisation: every call, number, key, campaign, webhook, do-not-call entry and knowledge "
             "base (GDPR); refused while calls are up or a campaign runs", "gdpr", OrganisationErasureReceipt,
             query=EraseOrganisationQuery, errors=(400, 401, 404, 409)),
    Endpoint("PATCH", "/api/organisation/settings", numbers.update_organisation_settings,
             "updateOrganisationSettings", "Change the organisation's settings (null resets one)",
             "organisation", OrganisationOut, body=OrganisationSettingsPatch, errors=(400, 401, 413, 415)),
    Endpoint("POST", "/api/knowledge-bases", knowledge.create_base, "createKnowledgeBase",
             "Create a knowledge base (agents attach it by id or name in agent_config.knowledge_bases)",
             "knowledge", knowledge.KnowledgeBaseOut, 201, body=knowledge.CreateKnowledgeBaseRequest,
             errors=(400, 401, 409, 413, 415)),
    Endpoint("GET", "/api/knowledge-bases", knowledge.list_bases, "listKnowledgeBases",
             "List the organisation's knowledge bases", "knowledge", knowledge.KnowledgeBaseList, errors=(401,)),
    Endpoint("DELETE", "/api/knowledge-bases/{kb}", knowledge.delete_base, "deleteKnowledgeBase",
             "Delete a knowledge base with all its documents", "knowledge", knowledge.KnowledgeBaseDeleted,
             errors=(401, 404)),
    Endpoint("GET", "/api/knowledge-bases/{kb}/documents", knowledge.list_documents, "listKnowledgeDocuments",
             "List a knowledge base's documents", "knowledge", knowledge.DocumentList, errors=(401, 404)),
    Endpoint("PUT", "/api/knowledge-bases/{kb}/documents/{name}", knowledge.put_document, "putKnowledgeDocument",
             "Add a document (text, Markdown, HTML or PDF as the body), replacing one of the same name",
             "knowledge", knowledge.DocumentOut, 201,
             body_content_type="text/plain, text/markdown, text/html, application/pdf",
             errors=(400, 401, 404, 408, 413, 422)),
    Endpoint("DELETE", "/api/knowledge-bases/{kb}/documents/{name}", knowledge.delete_document,
             "deleteKnowledgeDocument", "Delete a document and every passage of it", "knowledge",
             knowledge.DocumentDeleted, errors=(401, 404)),
    Endpoint("POST", "/api/knowledge-bases/{kb}/search", knowledge.search, "searchKnowledgeBase",
             "The passages an agent would get for a question", "knowledge", knowledge.SearchResult,
             body=knowledge.SearchRequest, errors=(400, 401, 404, 413, 415)),
    Endpoint("GET", "/api/organisation/tool-signing-secret", numbers.get_tool_signing_secret,
             "getToolSigningSecret", "The secrets HTTP tool requests of this organisation are signed with",
             "organisation", ToolSigningSecret, errors=(401, 409)),
    Endpoint("POST", "/api/campaigns", campaigns.create_campaign, "createCampaign",
             "Create an outbound campaign (agent, caller numbers, pacing, window, retries)", "campaigns",
             CampaignOut, 201, body=CreateCampaignRequest, errors=(400, 401, 413, 415, 422)),
    Endpoint("GET", "/api/campaigns", campaigns.list_campaigns, "listCampaigns", "List campaigns, newest first",
             "campaigns", CampaignList, errors=(401,)),
    Endpoint("GET", "/api/campaigns/{campaign_id}", campaigns.get_campaign, "getCampaign",
             "A campaign's progress: contacts by state, calls, success, latency, cost", "campaigns", CampaignOut,
             errors=(401, 404)),
    Endpoint("POST", "/api/campaigns/{campaign_id}/contacts", campaigns.upload_contacts, "uploadCampaignContacts",
             "Add contacts: CSV streamed (or JSON {contacts: [...]}); a report of rejected rows", "campaigns",
             ContactImportReport, body_content_type="text/csv", errors=(400, 401, 404, 409, 413, 415)),
    Endpoint("POST", "/api/campaigns/{campaign_id}/start", campaigns.start_campaign, "startCampaign",
             "Start dialling", "campaigns", CampaignOut, errors=(401, 404, 409, 503)),
    Endpoint("POST", "/api/campaigns/{campaign_id}/pause", campaigns.pause_campaign, "pauseCampaign",
             "Stop new dials; live calls finish", "campaigns", CampaignOut, errors=(401, 404, 409)),
    Endpoint("POST", "/api/campaigns/{campaign_id}/resume", campaigns.resume_campaign, "resumeCampaign",
             "Dial again after a pause", "campaigns", CampaignOut, errors=(401, 404, 409, 503)),
    Endpoint("POST", "/api/campaigns/{campaign_id}/cancel", campaigns.cancel_campaign, "cancelCampaign",
             "Cancel: contacts not yet dialled end cancelled; live calls finish", "campaigns", CampaignOut,
             errors=(401, 404, 409)),
    Endpoint("GET", "/api/campaigns/{campaign_id}/export", export.export_campaign_calls, "exportCampaignCalls",
             "Stream a campaign's calls (turns, outcome, cost) as JSON Lines or CSV", "campaigns", None,
             query=export.ExportQuery, errors=(400, 401, 404),
             extra_responses={200: "application/x-ndjson (one call per line) or text/csv (one call per row)"}),
    Endpoint("GET", "/api/usage", usage.usage_report, "getUsage",
             "Usage and cost of the organisation's calls created in [from, to), in total and per day or campaign",
             "usage", usage.UsageReport, query=usage.UsageQuery, errors=(400, 401)),
    Endpoint("POST", "/api/webhooks/endpoints", webhooks.create_endpoint, "createWebhookEndpoint",
             "Register an endpoint for event webhooks (its whsec_ secret is shown once)", "webhooks",
             EndpointWithSecret, 201, body=CreateEndpointRequest, errors=(400, 401, 413, 415)),
    Endpoint("GET", "/api/webhooks/endpoints", webhooks.list_endpoints, "listWebhookEndpoints",
             "List the organisation's webhook endpoints", "webhooks", EndpointList, errors=(401,)),
    Endpoint("GET", "/api/webhooks/endpoints/{endpoint_id}", webhooks.get_endpoint, "getWebhookEndpoint",
             "A webhook endpoint", "webhooks", EndpointOut, errors=(401, 404)),
    Endpoint("PATCH", "/api/webhooks/endpoints/{endpoint_id}", webhooks.update_endpoint, "updateWebhookEndpoint",
             "Change an endpoint's URL, event types, description or enabled flag", "webhooks", EndpointOut,
             body=UpdateEndpointRequest, errors=(400, 401, 404, 413, 415)),
    Endpoint("DELETE", "/api/webhooks/endpoints/{endpoint_id}", webhooks.delete_endpoint, "deleteWebhookEndpoint",
             "Delete an endpoint and its pending deliveries", "webhooks", EndpointDeleted, errors=(401, 404)),
    Endpoint("POST", "/api/webhooks/endpoints/{endpoint_id}/rotate-secret", webhooks.rotate_secret,
             "rotateWebhookSecret",
             "New secret; the old one keeps signing alongside for outbound_webhooks.secret_grace_s", "webhooks",
             EndpointWithSecret, errors=(401, 404)),
    Endpoint("GET", "/api/webhooks/deliveries", webhooks.list_deliveries, "listWebhookDeliveries",
             "The delivery log, newest first", "webhooks", DeliveryList, query=ListDeliveriesQuery,
             errors=(400, 401)),
    Endpoint("GET", "/api/webhooks/deliveries/{delivery_id}", webhooks.get_delivery, "getWebhookDelivery",
             "A delivery with every attempt (status code, latency, error)", "webhooks", DeliveryDetail,
             errors=(401, 404)),
    Endpoint("POST", "/api/webhooks/replay", webhooks.replay, "replayWebhooks",
             "Send one event (message_id) or those written in [since, until) again", "webhooks", ReplayResult,
             202, body=ReplayRequest, errors=(400, 401, 404, 413, 415)),
)

PATH_PARAMS: dict[str, dict[str, Any]] = {"call_id": _UUID, "key_id": _UUID, "phone": _PHONE, "campaign_id": _UUID,
                                          "endpoint_id": _UUID, "delivery_id": {"type": "integer", "minimum": 1},
                                          "kb": {"type": "string", "description": "The knowledge base's id or name"},
                                          "name": {"type": "string", "description": "The document's name, e.g. "
                                                                                    "returns.pdf (URL-encoded)"}}


def add_routes(app: web.Application) -> None:
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)


__all__ = ["ENDPOINTS", "Endpoint", "ErrorBody", "PATH_PARAMS", "add_routes"]
