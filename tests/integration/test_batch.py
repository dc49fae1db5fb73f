"""A batch commits all its cards or none, upserts by `(card_type, external_ref)`, answers in
request order, and refuses (422/413, nothing stored) anything over a limit of the contract."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.support import SEED_CARDS, Tenant, card, count_rows

BATCH = "/api/v1/cards/batch"


async def test_creates_cards_in_request_order(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(BATCH, json={"cards": SEED_CARDS}, headers=tenant.headers())

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["created"], body["updated"]) == (4, 0)
    assert [c["title"] for c in body["cards"]] == [c["title"] for c in SEED_CARDS]
    first = body["cards"][0]
    assert first["tenant_id"] == str(tenant.id)
    assert first["content"] == {"summary": "Makes industrial widgets"}
    assert first["tags"] == ["onboarding"]
    assert first["external_ref"] == "company-profile"
    assert (first["version"], first["usage_count"], first["last_used_at"]) == (1, 0, None)
    assert first["created_at"].endswith("Z")
    assert first["updated_at"].endswith("Z")


async def test_card_without_optional_fields(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        BATCH,
        json={"cards": [{"card_type": "topic", "title": "AI", "content": {}}]},
        headers=tenant.headers(),
    )
    assert response.status_code == 201
    created = response.json()["cards"][0]
    assert created["tags"] == []
    assert created["external_ref"] is None


async def test_upsert_by_external_ref_updates_instead_of_duplicating(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    first = await client.post(
        BATCH, json={"cards": [card(external_ref="profile", title="Old")]}, headers=tenant.headers()
    )
    second = await client.post(
        BATCH,
        json={"cards": [card(external_ref="profile", title="New"), card("voice", "Calm")]},
        headers=tenant.headers(),
    )

    assert second.status_code == 201
    body = second.json()
    assert (body["created"], body["updated"]) == (1, 1)
    updated = body["cards"][0]
    assert updated["id"] == first.json()["cards"][0]["id"]
    assert (updated["title"], updated["version"]) == ("New", 2)
    assert await count_rows(owner_pool, "cards", tenant.id) == 2


async def test_same_external_ref_with_another_type_is_another_card(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        BATCH,
        json={"cards": [card("company", external_ref="x"), card("voice", external_ref="x")]},
        headers=tenant.headers(),
    )
    assert response.status_code == 201
    assert response.json()["created"] == 2


async def test_duplicate_external_ref_in_one_batch_is_422_naming_the_index(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    cards = [card(external_ref="a"), card("voice"), card(external_ref="a", title="Again")]
    response = await client.post(BATCH, json={"cards": cards}, headers=tenant.headers())

    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["loc"] == ["body", "cards", 2, "external_ref"]
    assert await count_rows(owner_pool, "cards", tenant.id) == 0


async def test_one_invalid_card_rejects_the_whole_batch(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    cards = [card(), card("voice"), card("audience"), card("not-a-type")]
    response = await client.post(BATCH, json={"cards": cards}, headers=tenant.headers())

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"][:3] == ["body", "cards", 3]
    assert await count_rows(owner_pool, "cards", tenant.id) == 0


async def test_upserting_an_archived_card_restores_it(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        BATCH, json={"cards": [card(external_ref="p")]}, headers=tenant.headers()
    )
    card_id = created.json()["cards"][0]["id"]
    assert (
        await client.delete(f"/api/v1/cards/{card_id}", headers=tenant.headers())
    ).status_code == 204

    again = await client.post(
        BATCH, json={"cards": [card(external_ref="p", title="Back")]}, headers=tenant.headers()
    )
    assert again.json()["cards"][0]["id"] == card_id
    assert again.json()["updated"] == 1
    fetched = await client.get(f"/api/v1/cards/{card_id}", headers=tenant.headers())
    assert fetched.status_code == 200
    assert fetched.json()["title"] == "Back"


@pytest.mark.parametrize(
    ("bad_card", "loc", "needle"),
    [
        (card(title=""), ["body", "cards", 0, "title"], "at least 1"),
        (card(title="x" * 201), ["body", "cards", 0, "title"], "200"),
        (card(title="   "), ["body", "cards", 0, "title"], "blank"),
        (card(tags=[f"t{i}" for i in range(21)]), ["body", "cards", 0, "tags"], "20"),
        (card(tags=["x" * 65]), ["body", "cards", 0, "tags", 0], "64"),
        (card(tags=[""]), ["body", "cards", 0, "tags", 0], "at least 1"),
        (card(external_ref="r" * 201), ["body", "cards", 0, "external_ref"], "200"),
        (card(content={"blob": "x" * 33_000}), ["body", "cards", 0, "content"], "32768"),
        (card("spaceship"), ["body", "cards", 0, "card_type"], "company"),
        (card(title="nul\x00byte"), ["body", "cards", 0, "title"], "NUL"),
        (card(content={"text": "nul\x00"}), ["body", "cards", 0, "content"], "NUL"),
        (card(content={"n": 10**30}), ["body", "cards", 0, "content"], "64-bit"),
        ({**card(), "content": ["not", "an", "object"]}, ["body", "cards", 0, "content"], "object"),
        (
            {**card(), "tenant_id": "123e4567-e89b-12d3-a456-426614174000"},
            ["body", "cards", 0, "tenant_id"],
            "not permitted",
        ),
        ({**card(), "usage_count": 5}, ["body", "cards", 0, "usage_count"], "not permitted"),
        (
            {**card(), "id": "550e8400-e29b-41d4-a716-446655440001"},
            ["body", "cards", 0, "id"],
            "not permitted",
        ),
        ({"card_type": "company", "content": {}}, ["body", "cards", 0, "title"], "required"),
    ],
)
async def test_invalid_card_is_422_naming_field_and_limit(
    client: httpx.AsyncClient,
    tenant: Tenant,
    owner_pool: asyncpg.Pool,
    bad_card: dict[str, object],
    loc: list[object],
    needle: str,
) -> None:
    response = await client.post(BATCH, json={"cards": [bad_card]}, headers=tenant.headers())

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["status"] == 422
    assert any(e["loc"] == loc and needle.lower() in e["msg"].lower() for e in problem["errors"]), (
        problem
    )
    assert await count_rows(owner_pool, "cards", tenant.id) == 0


async def test_infinite_numbers_are_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    raw = '{"cards": [{"card_type": "company", "title": "t", "content": {"n": 1e400}}]}'
    response = await client.post(
        BATCH, content=raw, headers=tenant.headers(**{"Content-Type": "application/json"})
    )
    assert response.status_code == 422
    assert "finite" in response.json()["errors"][0]["msg"]


@pytest.mark.parametrize(("count", "status"), [(0, 422), (100, 201), (101, 422)])
async def test_batch_holds_1_to_100_cards(
    client: httpx.AsyncClient, tenant: Tenant, count: int, status: int
) -> None:
    cards = [card(title=f"Card {i}") for i in range(count)]
    response = await client.post(BATCH, json={"cards": cards}, headers=tenant.headers())
    assert response.status_code == status
    if status == 422:
        assert response.json()["errors"][0]["loc"] == ["body", "cards"]
        assert "100" in response.text or "at least 1" in response.text


async def test_body_over_one_mebibyte_is_413(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    cards = [card(title=f"c{i}", content={"text": "y" * 12_000}) for i in range(90)]
    raw = json.dumps({"cards": cards})
    assert len(raw) > 1024 * 1024
    response = await client.post(
        BATCH, content=raw, headers=tenant.headers(**{"Content-Type": "application/json"})
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "1048576" in response.json()["detail"]
    assert await count_rows(owner_pool, "cards", tenant.id) == 0


async def test_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"cards": [{"card_type": "company", "title": "t", "content": {"x": "'
        for _ in range(20):
            yield b"z" * 65536
        yield b'"}}]}'

    response = await client.post(
        BATCH, content=chunks(), headers=tenant.headers(**{"Content-Type": "application/json"})
    )
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_non_json_body_is_415(
    client: httpx.AsyncClient, tenant: Tenant, content_type: str | None
) -> None:
    headers = tenant.headers()
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post(BATCH, content=json.dumps({"cards": [card()]}), headers=headers)
    assert response.status_code == 415
    assert response.json()["status"] == 415


async def test_json_with_charset_and_problem_suffix_types_are_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        BATCH,
        content=json.dumps({"cards": [card()]}),
        headers=tenant.headers(**{"Content-Type": "application/json; charset=utf-8"}),
    )
    assert response.status_code == 201


@pytest.mark.parametrize("raw", ['{"cards": [', "not json", ""])
async def test_unreadable_json_is_400(client: httpx.AsyncClient, tenant: Tenant, raw: str) -> None:
    response = await client.post(
        BATCH, content=raw, headers=tenant.headers(**{"Content-Type": "application/json"})
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("/malformed-json")


async def test_duplicate_tags_are_kept_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        BATCH, json={"cards": [card(tags=["a", "b", "a"])]}, headers=tenant.headers()
    )
    assert response.json()["cards"][0]["tags"] == ["a", "b"]
