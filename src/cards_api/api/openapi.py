"""OpenAPI details FastAPI cannot infer: JSON bodies read by dependencies, auth headers,
problem+json error responses and response headers."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from cards_api.domain.responses import Problem
from cards_api.problems import PROBLEM_MEDIA_TYPE

_REF = "#/components/schemas/{model}"
_BODY_MODELS: list[type[BaseModel]] = []

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    409: "request-in-progress",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    503: "service-unavailable",
}
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
        example = {
            "type": "https://cards-api.dev/problems/" + _SLUGS[status],
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": _DESCRIPTIONS[status],
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        }
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "schema": {"$ref": _REF.format(model="Problem")},
                    "example": example,
                }
            },
        }
        if status in (429, 503):
            entry["headers"] = {
                "Retry-After": header("Seconds to wait before retrying", {"type": "integer"})
            }
        responses[status] = entry
    return responses


# One realistic body per request model, shown in /docs and docs/api.md's spirit.
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "BatchCreateRequest": {
        "cards": [
            {
                "card_type": "company",
                "title": "Acme Widgets",
                "content": {"summary": "Makes industrial widgets"},
                "tags": ["onboarding"],
                "external_ref": "company-profile",
            }
        ]
    },
    "RetrieveRequest": {"query": "what do our customers pay?", "mode": "hybrid", "limit": 5},
    "CardPatch": {"title": "Acme Widgets Ltd", "tags": ["onboarding", "2026"]},
    "UsageRequest": {"workflow_id": "newsletter-2026-03", "workflow_type": "premium_newsletter"},
    "ContextRequest": {
        "task": "Write the March newsletter about our new pricing",
        "token_budget": 1000,
        "card_types": ["company", "product", "voice"],
        "workflow_id": "newsletter-2026-03",
        "workflow_type": "premium_newsletter",
    },
}


def json_request(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra=` for a route whose JSON body is read by `bodies.json_body(model)`."""
    _BODY_MODELS.append(model)
    media: dict[str, Any] = {"schema": {"$ref": _REF.format(model=model.__name__)}}
    if model.__name__ in REQUEST_EXAMPLES:
        media["example"] = REQUEST_EXAMPLES[model.__name__]
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


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
