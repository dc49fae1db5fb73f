"""Every request gets a trace id back, every error is problem+json with it, and the operations
endpoints and the OpenAPI document answer as documented."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.support import Tenant

PROBLEM_FIELDS = {"type", "title", "status", "detail", "trace_id"}


async def test_trace_id_is_echoed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(
        "/api/v1/cards", headers=tenant.headers(**{"X-Trace-ID": "run-42/step-7"})
    )
    assert response.headers["X-Trace-ID"] == "run-42/step-7"


async def test_trace_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")
    assert len(first.headers["X-Trace-ID"]) == 32
    assert first.headers["X-Trace-ID"] != second.headers["X-Trace-ID"]


@pytest.mark.parametrize("bad", ["x" * 129, "has space", "tab\there", "é"])
async def test_an_invalid_trace_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/health", headers=[(b"x-trace-id", bad.encode("utf-8"))])
    assert response.status_code == 200
    assert response.headers["X-Trace-ID"] != bad
    assert len(response.headers["X-Trace-ID"]) == 32


async def test_a_valid_traceparent_supplies_the_trace_id(client: httpx.AsyncClient) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = await client.get("/health", headers={"traceparent": traceparent})
    assert response.headers["X-Trace-ID"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    both = await client.get("/health", headers={"traceparent": traceparent, "X-Trace-ID": "mine"})
    assert both.headers["X-Trace-ID"] == "mine"


async def test_errors_are_problem_json_carrying_the_trace_id(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        "/api/v1/cards/retrieve", json={}, headers=tenant.headers(**{"X-Trace-ID": "trace-abc"})
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert set(problem) >= PROBLEM_FIELDS
    assert problem["trace_id"] == "trace-abc" == response.headers["X-Trace-ID"]
    assert problem["status"] == 422
    assert problem["type"].startswith("https://")
    assert problem["errors"] == [{"loc": ["body"], "msg": problem["errors"][0]["msg"]}]
    assert "card_ids" in problem["errors"][0]["msg"]


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert set(response.json()) >= PROBLEM_FIELDS


async def test_trailing_slash_is_not_redirected(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/api/v1/cards/", headers=tenant.headers())
    assert response.status_code == 404


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/cards/batch")
    assert response.status_code == 405
    assert response.json()["status"] == 405
    assert "POST" in response.headers["Allow"]


async def test_health_answers_without_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_the_database_and_schema(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    assert (await client.get("/ready")).status_code == 200
    expected = app.state.schema_head
    app.state.schema_head = "9999_future"
    try:
        response = await client.get("/ready")
    finally:
        app.state.schema_head = expected
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "9999_future" in response.json()["detail"]


async def test_openapi_document_and_docs(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    assert set(paths) == {
        "/health",
        "/ready",
        "/metrics",
        "/api/v1/cards/batch",
        "/api/v1/cards/retrieve",
        "/api/v1/context",
        "/api/v1/contexts/{context_id}",
        "/api/v1/search/info",
        "/api/v1/cards",
        "/api/v1/cards/{card_id}",
        "/api/v1/cards/{card_id}/versions",
        "/api/v1/cards/{card_id}/usage",
        "/api/v1/usage/summary",
    }
    batch = paths["/api/v1/cards/batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/BatchCreateRequest"
    )
    assert {"201", "401", "403", "409", "413", "415", "422"} <= set(batch["responses"])
    assert "BatchCreateRequest" in document["components"]["schemas"]
    assert any(p["name"] == "X-Tenant-ID" for p in batch["parameters"])
    assert (await client.get("/docs")).status_code == 200


async def test_docs_api_md_lists_exactly_the_routes_of_the_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    import re
    from pathlib import Path

    document = (await client.get("/openapi.json")).json()
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    reference = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^### `([A-Z]+) (/\S*)`$", reference, re.MULTILINE))
    assert documented == served


async def test_every_operation_has_a_summary_errors_and_examples(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            body = operation.get("requestBody")
            if body is not None:
                assert "example" in body["content"]["application/json"], where
            if path.startswith("/api/"):
                errors = {
                    k: v for k, v in operation["responses"].items() if k.startswith(("4", "5"))
                }
                assert {"401", "429", "503"} <= set(errors), where
                for status, response in errors.items():
                    problem = response["content"]["application/problem+json"]
                    assert problem["example"]["status"] == int(status), where
