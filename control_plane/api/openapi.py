"""OpenAPI 3.1, generated from the endpoint table and the pydantic models (JSON Schema 2020-12)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..errors import ErrorBody
from .routes import ENDPOINTS, PATH_PARAMS

_REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Malformed JSON or failed validation (pydantic errors in details)",
    401: "Missing, invalid or revoked API key",
    404: "Not found (or belongs to another organisation)",
    409: "Conflict (e.g. the number is on the do-not-call list)",
    413: "Body too large",
    415: "Body is not of the expected media type",
    422: "Well-formed but unprocessable (e.g. unknown campaign, Telnyx refused the parameters)",
    429: "Rate limited: see Retry-After",
    502: "Telnyx failed; its error is in details",
    503: "Not configured, or Telnyx is rate limiting us: see Retry-After",
}


def build_openapi(version: str = "0.1.0", server_url: str | None = None) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for endpoint in ENDPOINTS:
        if endpoint.body is not None:
            models.append((endpoint.body, "validation"))
        if endpoint.response is not None:
            models.append((endpoint.response, "serialization"))
    unique = list(dict.fromkeys(models))  # first occurrence of each, in order
    refs, top = models_json_schema(unique, ref_template=_REF)
    schemas = dict(top.get("$defs", {}))

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return refs[(model, mode)]  # type: ignore[index]

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        operation: dict[str, Any] = {
            "operationId": endpoint.operation_id,
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "responses": {},
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": PATH_PARAMS[name]}
            for name in re.findall(r"{(\w+)}", endpoint.path)
        ]
        if endpoint.query is not None:
            query_schema = endpoint.query.model_json_schema(ref_template=_REF)
            for name, prop in query_schema.get("properties", {}).items():
                parameters.append({"name": name, "in": "query", "required": name in query_schema.get("required", []),
                                   "schema": prop})
            schemas.update(query_schema.get("$defs", {}))
        parameters.extend(endpoint.headers)
        if parameters:
            operation["parameters"] = parameters
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {endpoint.body_content_type: {"schema": ref(endpoint.body, "validation")}},
            }
        elif endpoint.body_content_type != "application/json":
            # A raw body may be of several media types ("text/plain, application/pdf").
            operation["requestBody"] = {
                "required": True, "content": {media.strip(): {"schema": {"type": "string"}}
                                              for media in endpoint.body_content_type.split(",")},
            }
        if endpoint.response is not None:
            operation["responses"][str(endpoint.status)] = {
                "description": {200: "OK", 201: "Created", 202: "Accepted"}.get(endpoint.status, "OK"),
                "content": {"application/json": {"schema": ref(endpoint.response, "serialization")}},
            }
        for status, text in (endpoint.extra_responses or {}).items():
            operation["responses"][str(status)] = {
                "description": text,
                "content": {"application/json": {"schema": ref(endpoint.response, "serialization")}},
            } if endpoint.response is not None else {"description": text}
        for status in endpoint.errors:
            response: dict[str, Any] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": ref(ErrorBody, "serialization")}},
            }
            if status in (429, 503):
                response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
            operation["responses"][str(status)] = response
        if endpoint.auth:
            operation["security"] = [{"bearerAuth": []}]
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "callagent control plane",
            "version": version,
            "description": "Start and control AI phone calls on Telnyx; every error is "
                           '{"error": {"code", "message", "details"}}.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An organisation API key (ck_...)"}},
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
