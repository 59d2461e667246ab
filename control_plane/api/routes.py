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
from . import handlers, numbers
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
    ErasureReceipt,
    HangupResponse,
    ListCallsQuery,
    NumberList,
    NumberOut,
    NumberRemoved,
    OrganisationOut,
    OrganisationSettingsPatch,
    StartCallRequest,
    StartCallResponse,
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
    Endpoint("DELETE", "/api/numbers/{phone}", numbers.remove_number, "removeNumber",
             "Stop answering a number (calls to it are then rejected)", "numbers", NumberRemoved,
             errors=(400, 401, 404)),
    Endpoint("GET", "/api/organisation", numbers.get_organisation, "getOrganisation",
             "The organisation of the API key, with its settings", "organisation", OrganisationOut,
             errors=(401,)),
    Endpoint("PATCH", "/api/organisation/settings", numbers.update_organisation_settings,
             "updateOrganisationSettings", "Change the organisation's settings (null resets one)",
             "organisation", OrganisationOut, body=OrganisationSettingsPatch, errors=(400, 401, 413, 415)),
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
)

PATH_PARAMS: dict[str, dict[str, Any]] = {"call_id": _UUID, "key_id": _UUID, "phone": _PHONE, "campaign_id": _UUID}


def add_routes(app: web.Application) -> None:
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)


__all__ = ["ENDPOINTS", "Endpoint", "ErrorBody", "PATH_PARAMS", "add_routes"]
