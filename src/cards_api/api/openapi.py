"""OpenAPI details FastAPI cannot infer: JSON bodies read by dependencies, auth headers,
problem+json error responses and response headers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from cards_api.domain.responses import Problem
from cards_api.problems import PROBLEM_MEDIA_TYPE

_REF = "#/components/schemas/{model}"
_BODY_MODELS: list[type[BaseModel]] = []

_DESCRIPTIONS = {
    400: "Bad request: a missing or invalid header, or a body that is not JSON",
    401: "Missing, unknown or revoked API key",
    403: "The key lacks the scope, or belongs to another tenant than X-Tenant-ID",
    404: "No such card (unknown, archived or another tenant's)",
    409: "A request with this Idempotency-Key is still in progress",
    412: "If-Match does not match the card's current version",
    413: "Request body over 1 MiB",
    415: "Request body is not JSON",
    422: "Validation failed; `errors` names each failing field and limit",
    429: "Too many requests for this API key; retry after `Retry-After` seconds",
    503: "The database is unavailable; retry",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the error statuses a route can return. Every route may answer
    503 (database trouble); every authenticated route (401) may also answer 429."""
    all_statuses = {*statuses, 503}
    if 401 in all_statuses:
        all_statuses.add(429)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(all_statuses):
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _REF.format(model="Problem")}}},
        }
        if status in (429, 503):
            entry["headers"] = {
                "Retry-After": header("Seconds to wait before retrying", {"type": "integer"})
            }
        responses[status] = entry
    return responses


def json_request(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra=` for a route whose JSON body is read by `deps.json_body(model)`."""
    _BODY_MODELS.append(model)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}
            },
        }
    }


def header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


TRACE_HEADER = header("The request's trace id, as sent or generated")


def _add_schema(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    schema = model.model_json_schema(ref_template=_REF)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, schema)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        models: list[type[BaseModel]] = [Problem, *_BODY_MODELS]
        for model in models:
            _add_schema(schemas, model)
        components.setdefault("securitySchemes", {})["ApiKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `cards-api keys create`",
        }
        tenant_header = {
            "name": "X-Tenant-ID",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
            "description": "The tenant acting; must be the API key's tenant",
        }
        trace_header = {
            "name": "X-Trace-ID",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Trace id echoed on the response and written in every log line. "
            "At most 128 visible ASCII characters; anything else is replaced, never refused.",
        }
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                operation.setdefault("parameters", []).append(trace_header)
                for response in operation.get("responses", {}).values():
                    response.setdefault("headers", {})["X-Trace-ID"] = TRACE_HEADER
                if path.startswith("/api/"):
                    operation["parameters"].insert(0, tenant_header)
                    operation["security"] = [{"ApiKey": []}]
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
