"""Retrieve returns live cards of the tenant only: by ids in the order asked with the rest in
`missing_ids`, by types and tags (any value), by full text ranked best first."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support import SEED_CARDS, Tenant, card

RETRIEVE = "/api/v1/cards/retrieve"


async def _seed(
    client: httpx.AsyncClient, tenant: Tenant, cards: list[dict[str, Any]]
) -> list[str]:
    response = await client.post(
        "/api/v1/cards/batch", json={"cards": cards}, headers=tenant.headers()
    )
    assert response.status_code == 201
    return [c["id"] for c in response.json()["cards"]]


async def test_by_ids_keeps_the_order_asked_and_lists_missing_ids(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    ids = await _seed(client, tenant, SEED_CARDS)
    archived = ids[3]
    await client.delete(f"/api/v1/cards/{archived}", headers=tenant.headers())
    (foreign,) = await _seed(client, other_tenant, [card()])
    unknown = str(uuid.uuid4())

    asked = [ids[2], unknown, ids[0], foreign, archived, ids[1]]
    response = await client.post(RETRIEVE, json={"card_ids": asked}, headers=tenant.headers())

    assert response.status_code == 200
    body = response.json()
    assert [c["id"] for c in body["cards"]] == [ids[2], ids[0], ids[1]]
    assert body["missing_ids"] == [unknown, foreign, archived]


async def test_repeated_ids_come_back_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    (card_id,) = await _seed(client, tenant, [card()])
    response = await client.post(
        RETRIEVE, json={"card_ids": [card_id, card_id]}, headers=tenant.headers()
    )
    assert [c["id"] for c in response.json()["cards"]] == [card_id]


async def test_by_types(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _seed(client, tenant, SEED_CARDS)
    response = await client.post(
        RETRIEVE, json={"card_types": ["voice", "insight"]}, headers=tenant.headers()
    )
    assert sorted(c["card_type"] for c in response.json()["cards"]) == ["insight", "voice"]
    assert response.json()["missing_ids"] == []


async def test_by_tags_matches_any_of_them(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _seed(
        client,
        tenant,
        [
            card(title="A", tags=["red"]),
            card(title="B", tags=["blue"]),
            card(title="C", tags=["green"]),
        ],
    )
    response = await client.post(RETRIEVE, json={"tags": ["red", "blue"]}, headers=tenant.headers())
    assert sorted(c["title"] for c in response.json()["cards"]) == ["A", "B"]


async def test_filters_combine(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _seed(
        client,
        tenant,
        [card("voice", "A", tags=["x"]), card("company", "B", tags=["x"]), card("voice", "C")],
    )
    response = await client.post(
        RETRIEVE, json={"card_types": ["voice"], "tags": ["x"]}, headers=tenant.headers()
    )
    assert [c["title"] for c in response.json()["cards"]] == ["A"]


async def test_query_ranks_by_full_text_relevance(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _seed(
        client,
        tenant,
        [
            card("insight", "Pricing notes", content={"body": "Customers mention widgets once"}),
            card(
                "insight",
                "Widgets everywhere",
                content={"body": "widgets widgets and more widgets"},
            ),
            card("insight", "Unrelated", content={"body": "Nothing to see"}),
        ],
    )
    response = await client.post(
        RETRIEVE, json={"query": "widget", "mode": "text"}, headers=tenant.headers()
    )
    found = response.json()["cards"]
    assert [c["title"] for c in found] == ["Widgets everywhere", "Pricing notes"]
    assert found[0]["score"] > found[1]["score"] > 0


async def test_query_searches_nested_content(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _seed(client, tenant, [card(content={"deep": {"list": ["quantum computing"]}})])
    response = await client.post(
        RETRIEVE, json={"query": "quantum", "mode": "text"}, headers=tenant.headers()
    )
    assert len(response.json()["cards"]) == 1


async def test_limit_caps_results(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _seed(client, tenant, [card(title=f"T{i}") for i in range(5)])
    response = await client.post(
        RETRIEVE, json={"card_types": ["company"], "limit": 2}, headers=tenant.headers()
    )
    assert len(response.json()["cards"]) == 2


async def test_retrieving_is_not_usage(client: httpx.AsyncClient, tenant: Tenant) -> None:
    (card_id,) = await _seed(client, tenant, [card()])
    await client.post(RETRIEVE, json={"card_ids": [card_id]}, headers=tenant.headers())
    fetched = await client.get(f"/api/v1/cards/{card_id}", headers=tenant.headers())
    assert fetched.json()["usage_count"] == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body"]),
        ({"limit": 5}, ["body"]),
        ({"card_ids": []}, ["body", "card_ids"]),
        ({"card_ids": [str(uuid.uuid4()) for _ in range(101)]}, ["body", "card_ids"]),
        ({"card_ids": ["not-a-uuid"]}, ["body", "card_ids", 0]),
        ({"card_types": ["robot"]}, ["body", "card_types", 0]),
        ({"query": "x", "limit": 101}, ["body", "limit"]),
        ({"query": "x", "limit": 0}, ["body", "limit"]),
        ({"query": "x" * 501}, ["body", "query"]),
        ({"query": "x", "tenant_id": str(uuid.uuid4())}, ["body", "tenant_id"]),
    ],
)
async def test_invalid_requests_are_422(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(RETRIEVE, json=body, headers=tenant.headers())
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
