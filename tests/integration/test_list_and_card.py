"""One card reads, changes (version + 1, If-Match honoured) and archives as documented; its
history keeps every version; the list pages stably in creation order and refuses bad parameters."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import Tenant, card, count_rows

CARDS = "/api/v1/cards"


async def _create(
    client: httpx.AsyncClient, tenant: Tenant, *cards: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await client.post(
        f"{CARDS}/batch", json={"cards": list(cards)}, headers=tenant.headers()
    )
    assert response.status_code == 201
    created: list[dict[str, Any]] = response.json()["cards"]
    return created


async def test_get_returns_the_card_with_its_version_as_etag(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    (created,) = await _create(client, tenant, card())
    response = await client.get(f"{CARDS}/{created['id']}", headers=tenant.headers())

    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["ETag"] == '"1"'


async def test_unknown_card_is_404_problem(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(f"{CARDS}/{uuid.uuid4()}", headers=tenant.headers())
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_malformed_card_id_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(f"{CARDS}/not-a-uuid", headers=tenant.headers())
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path", "card_id"]


async def test_patch_changes_fields_and_bumps_the_version(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    (created,) = await _create(client, tenant, card(tags=["a"], content={"v": 1}))
    response = await client.patch(
        f"{CARDS}/{created['id']}",
        json={"title": "Renamed", "tags": ["b"]},
        headers=tenant.headers(),
    )

    assert response.status_code == 200
    patched = response.json()
    assert (patched["title"], patched["tags"], patched["content"]) == ("Renamed", ["b"], {"v": 1})
    assert patched["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert patched["updated_at"] > created["updated_at"]
    assert patched["created_at"] == created["created_at"]


@pytest.mark.parametrize("if_match", ['"1"', 'W/"1"', "1", "*", '"7", "1"'])
async def test_patch_with_a_current_if_match_succeeds(
    client: httpx.AsyncClient, tenant: Tenant, if_match: str
) -> None:
    (created,) = await _create(client, tenant, card())
    response = await client.patch(
        f"{CARDS}/{created['id']}",
        json={"content": {"new": True}},
        headers=tenant.headers(**{"If-Match": if_match}),
    )
    assert response.status_code == 200
    assert response.json()["content"] == {"new": True}


async def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    (created,) = await _create(client, tenant, card(title="Original"))
    url = f"{CARDS}/{created['id']}"
    await client.patch(url, json={"title": "Second"}, headers=tenant.headers())

    stale = await client.patch(
        url, json={"title": "Lost update"}, headers=tenant.headers(**{"If-Match": '"1"'})
    )

    assert stale.status_code == 412
    assert stale.json()["status"] == 412
    current = (await client.get(url, headers=tenant.headers())).json()
    assert (current["title"], current["version"]) == ("Second", 2)


async def test_malformed_if_match_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    (created,) = await _create(client, tenant, card())
    response = await client.patch(
        f"{CARDS}/{created['id']}",
        json={"title": "x"},
        headers=tenant.headers(**{"If-Match": "abc"}),
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": None},
        {"title": ""},
        {"usage_count": 9},
        {"card_type": "voice"},
        {"version": 5},
        {"tags": ["x"] * 3 + [f"t{i}" for i in range(20)]},
        {"content": {"big": "x" * 40_000}},
    ],
)
async def test_invalid_patch_is_422(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]
) -> None:
    (created,) = await _create(client, tenant, card())
    response = await client.patch(f"{CARDS}/{created['id']}", json=body, headers=tenant.headers())
    assert response.status_code == 422, response.text
    fetched = (await client.get(f"{CARDS}/{created['id']}", headers=tenant.headers())).json()
    assert fetched["version"] == 1


async def test_patch_of_unknown_card_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch(
        f"{CARDS}/{uuid.uuid4()}", json={"title": "x"}, headers=tenant.headers()
    )
    assert response.status_code == 404


async def test_archive_hides_the_card_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    created, kept = await _create(client, tenant, card(), card("voice"))
    url = f"{CARDS}/{created['id']}"

    response = await client.delete(url, headers=tenant.headers())

    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(url, headers=tenant.headers())).status_code == 404
    assert (
        await client.patch(url, json={"title": "x"}, headers=tenant.headers())
    ).status_code == 404
    assert (await client.delete(url, headers=tenant.headers())).status_code == 404
    assert (await client.get(f"{url}/versions", headers=tenant.headers())).status_code == 404
    usage = await client.post(
        f"{url}/usage", json={"workflow_id": "w", "workflow_type": "t"}, headers=tenant.headers()
    )
    assert usage.status_code == 404
    listed = (await client.get(CARDS, headers=tenant.headers())).json()["cards"]
    assert [c["id"] for c in listed] == [kept["id"]]
    # Soft delete: the row and its history stay in the database.
    assert await count_rows(owner_pool, "cards", tenant.id) == 2


async def test_archive_with_a_stale_if_match_is_412(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    (created,) = await _create(client, tenant, card())
    url = f"{CARDS}/{created['id']}"
    response = await client.delete(url, headers=tenant.headers(**{"If-Match": '"2"'}))
    assert response.status_code == 412
    assert (await client.get(url, headers=tenant.headers())).status_code == 200


async def test_versions_list_every_version_newest_first(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    (created,) = await _create(client, tenant, card(title="v1", external_ref="r"))
    url = f"{CARDS}/{created['id']}"
    await _create(client, tenant, card(title="v2", external_ref="r"))
    await client.patch(url, json={"title": "v3", "tags": ["t"]}, headers=tenant.headers())

    response = await client.get(f"{url}/versions", headers=tenant.headers())

    assert response.status_code == 200
    versions = response.json()["versions"]
    assert [(v["version"], v["title"]) for v in versions] == [(3, "v3"), (2, "v2"), (1, "v1")]
    assert versions[0]["tags"] == ["t"]
    assert set(versions[0]) == {"version", "title", "content", "tags", "created_at"}


async def test_versions_paginate(client: httpx.AsyncClient, tenant: Tenant) -> None:
    (created,) = await _create(client, tenant, card())
    url = f"{CARDS}/{created['id']}"
    for i in range(4):
        await client.patch(url, json={"title": f"t{i}"}, headers=tenant.headers())
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{url}/versions", params=params, headers=tenant.headers())).json()
        seen += [v["version"] for v in page["versions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]


async def test_list_pages_through_every_card_once(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await _create(client, tenant, *(card(title=f"c{i}") for i in range(7)))
    await _create(client, tenant, *(card(title=f"d{i}") for i in range(5)))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        response = await client.get(CARDS, params=params, headers=tenant.headers())
        assert response.status_code == 200
        page = response.json()
        seen += [c["id"] for c in page["cards"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 12
    assert set(seen) >= {c["id"] for c in created}


async def test_list_filters_by_type_and_tag(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _create(
        client,
        tenant,
        card("voice", "A", tags=["x"]),
        card("voice", "B"),
        card("company", "C", tags=["x", "y"]),
    )
    by_type = await client.get(CARDS, params={"card_type": "voice"}, headers=tenant.headers())
    by_tag = await client.get(CARDS, params={"tag": "x"}, headers=tenant.headers())
    both = await client.get(
        CARDS, params={"tag": "x", "card_type": "company"}, headers=tenant.headers()
    )
    assert sorted(c["title"] for c in by_type.json()["cards"]) == ["A", "B"]
    assert sorted(c["title"] for c in by_tag.json()["cards"]) == ["A", "C"]
    assert [c["title"] for c in both.json()["cards"]] == ["C"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 101}, ["query", "limit"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"card_type": "robot"}, ["query", "card_type"]),
        ({"tag": "nul\x00"}, ["query", "tag"]),
        ({"tag": "t" * 65}, ["query", "tag"]),
        ({"cursor": "!!!not-a-cursor"}, ["query", "cursor"]),
        ({"cursor": "WzFd"}, ["query", "cursor"]),
    ],
)
async def test_invalid_list_parameters_are_422(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, Any], loc: list[str]
) -> None:
    response = await client.get(CARDS, params=params, headers=tenant.headers())
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
    if params.get("limit") == 101:  # the limit that was broken is named
        assert "less than or equal to 100" in response.json()["errors"][0]["msg"]
    if params.get("limit") == 0:
        assert "greater than or equal to 1" in response.json()["errors"][0]["msg"]
