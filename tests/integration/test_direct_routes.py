"""Routes served directly (api/direct.py) answer exactly as through FastAPI's router: the same
request sent both ways gets the same status, headers that matter and body (but its trace id),
for good requests and for every kind of bad one, in the same order of checks."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from cards_api.app import CardsApi
from cards_api.auth import Scope
from tests.support import Tenant, issue_tenant

HOT = {
    ("POST", "/api/v1/cards/retrieve"),
    ("POST", "/api/v1/cards/batch"),
    ("POST", "/api/v1/cards/{card_id}/usage"),
    ("POST", "/api/v1/context"),
    ("GET", "/api/v1/cards"),
}
COMPARED_HEADERS = (
    "content-type",
    "etag",
    "idempotent-replayed",
    "retry-after",
    "x-usage-recorded",
)


@contextlib.contextmanager
def through_fastapi(app: CardsApi) -> Iterator[None]:
    routes = app.direct_routes
    app.direct_routes = None
    try:
        yield
    finally:
        app.direct_routes = routes


def _answer(response: httpx.Response) -> dict[str, Any]:
    body: Any = response.content
    if response.headers.get("content-type", "").endswith("json") and response.content:
        body = response.json()
        if isinstance(body, dict):
            body.pop("trace_id", None)
    return {
        "status": response.status_code,
        "headers": {h: response.headers.get(h) for h in COMPARED_HEADERS},
        "body": body,
    }


async def _both_ways(
    app: CardsApi, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> dict[str, Any]:
    assert app.direct_routes is not None
    direct = _answer(await client.request(method, url, **kwargs))
    with through_fastapi(app):
        routed = _answer(await client.request(method, url, **kwargs))
    assert direct == routed, f"{method} {url}"
    return direct


def test_the_hot_routes_are_served_directly(app: CardsApi) -> None:
    assert app.direct_routes is not None
    assert app.direct_routes.paths() >= HOT
    # Routes with an If-Match dependency stay with FastAPI's solver.
    assert ("PATCH", "/api/v1/cards/{card_id}") not in app.direct_routes.paths()


@pytest.fixture
async def reader(owner_pool: asyncpg.Pool) -> Tenant:
    return await issue_tenant(owner_pool, {Scope.USAGE_WRITE})


async def test_good_and_bad_requests_get_the_same_answers_both_ways(
    app: CardsApi, client: httpx.AsyncClient, tenant: Tenant, reader: Tenant
) -> None:
    created = await client.post(
        "/api/v1/cards/batch",
        headers=tenant.headers(),
        json={"cards": [{"card_type": "insight", "title": "Widgets", "content": {"t": "widgets"}}]},
    )
    card_id = created.json()["cards"][0]["id"]
    json_headers = tenant.headers(**{"Content-Type": "application/json"})
    cases: list[tuple[str, str, dict[str, Any]]] = [
        # retrieve: found and missing, every check in its order
        ("POST", "/api/v1/cards/retrieve", {"json": {"card_ids": [card_id, str(uuid.uuid4())]}}),
        ("POST", "/api/v1/cards/retrieve", {"json": {"card_ids": [card_id]}, "headers": {}}),
        ("POST", "/api/v1/cards/retrieve", {"content": b"{", "headers": json_headers}),
        ("POST", "/api/v1/cards/retrieve", {"content": b"x", "headers": tenant.headers()}),
        ("POST", "/api/v1/cards/retrieve", {"json": {"card_ids": "nope"}}),
        ("POST", "/api/v1/cards/retrieve", {"json": {}, "headers": reader.headers()}),
        (
            "POST",
            "/api/v1/cards/retrieve",
            {"json": {}, "headers": {"Authorization": f"Bearer {tenant.key}"}},
        ),
        ("POST", "/api/v1/cards/retrieve", {"json": {}, "headers": {"Authorization": "Bearer x"}}),
        # list: query parameters validated by the same rules, after authentication
        ("GET", "/api/v1/cards?limit=1", {}),
        ("GET", "/api/v1/cards?limit=0", {}),
        ("GET", "/api/v1/cards?card_type=nope&limit=x", {}),
        ("GET", "/api/v1/cards?limit=0", {"headers": {}}),
        # path parameters
        ("GET", f"/api/v1/cards/{card_id}", {}),
        ("GET", f"/api/v1/cards/{uuid.uuid4()}", {}),
        ("GET", "/api/v1/cards/not-a-uuid", {}),
        ("GET", "/api/v1/cards/not-a-uuid", {"headers": {}}),
        ("POST", "/api/v1/cards/not-a-uuid/usage", {"json": {"workflow_id": "w"}}),
        ("POST", f"/api/v1/cards/{uuid.uuid4()}/usage", {"json": {"workflow_id": "w"}}),
        ("POST", f"/api/v1/cards/{card_id}/usage", {"json": {"workflow_id": 3}}),
        # batch: a bad idempotency key, a bad body
        ("POST", "/api/v1/cards/batch", {"json": {"cards": []}}),
        (
            "POST",
            "/api/v1/cards/batch",
            {"json": {"cards": []}, "headers": tenant.headers(**{"Idempotency-Key": "has space"})},
        ),
        # context and the rest
        ("POST", "/api/v1/context", {"json": {"task": "x", "token_budget": 0}}),
        ("GET", "/api/v1/usage/summary?group_by=nope", {}),
        ("GET", f"/api/v1/contexts/{uuid.uuid4()}", {}),
        ("GET", f"/api/v1/cards/{card_id}/versions", {}),
        ("GET", f"/api/v1/cards/{card_id}/versions?cursor=" + "x" * 600, {}),
    ]
    statuses = set()
    for method, url, kwargs in cases:
        kwargs.setdefault("headers", tenant.headers())
        statuses.add((await _both_ways(app, client, method, url, **kwargs))["status"])
    assert statuses >= {200, 400, 401, 403, 404, 415, 422}


async def test_an_idempotent_replay_is_the_same_both_ways(
    app: CardsApi, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = tenant.headers(**{"Idempotency-Key": f"direct-{uuid.uuid4()}"})
    body = {"cards": [{"card_type": "voice", "title": "Plain words", "content": {}}]}
    first = await client.post("/api/v1/cards/batch", headers=headers, json=body)
    assert first.status_code == 201
    replay = await _both_ways(
        app, client, "POST", "/api/v1/cards/batch", headers=headers, json=body
    )
    assert replay["headers"]["idempotent-replayed"] == "true"
    assert replay["body"] == first.json()
