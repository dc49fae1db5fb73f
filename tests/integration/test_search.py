"""Search by meaning (SPEC v1.1): a query finds cards holding any of its words (text), cards
close in meaning (semantic), or both fused (hybrid, the default); filters apply before ranking so
a filtered query never comes back short; archived and other tenants' cards never match; a
changed card is found by its new content."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests.support import Tenant, card

RETRIEVE = "/api/v1/cards/retrieve"

TOPICS = [
    card(
        "product",
        "Industrial widgets",
        content={"text": "We manufacture steel widgets for factories"},
    ),
    card("voice", "Tone of voice", content={"text": "Warm, plain English, never pushy"}),
    card(
        "audience",
        "Hospital buyers",
        content={"text": "Procurement teams at hospitals and clinics"},
    ),
    card(
        "insight",
        "Pricing change",
        content={"text": "Subscription prices rise ten percent in March"},
    ),
]


async def _seed(
    client: httpx.AsyncClient, tenant: Tenant, cards: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    response = await client.post(
        "/api/v1/cards/batch", json={"cards": cards}, headers=tenant.headers()
    )
    assert response.status_code == 201, response.text
    created: list[dict[str, Any]] = response.json()["cards"]
    return created


async def _search(
    client: httpx.AsyncClient, tenant: Tenant, query: str, mode: str | None = None, **body: Any
) -> list[dict[str, Any]]:
    payload = {"query": query, **body}
    if mode is not None:
        payload["mode"] = mode
    response = await client.post(RETRIEVE, json=payload, headers=tenant.headers())
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["cards"]
    return found


async def test_text_mode_matches_any_word_of_a_natural_question(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _seed(client, tenant, TOPICS)
    found = await _search(client, tenant, "what do our hospital customers want?", "text")
    assert [c["title"] for c in found] == ["Hospital buyers"]
    # Words the cards do not share do not hide the ones they do.
    found = await _search(client, tenant, "widgets, prices and the weather", "text")
    assert {c["title"] for c in found} == {"Industrial widgets", "Pricing change"}


async def test_semantic_mode_finds_by_meaning_without_a_shared_word(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _seed(client, tenant, TOPICS)
    found = await _search(client, tenant, "manufacturing machinery parts", "semantic", limit=1)
    assert [c["title"] for c in found] == ["Industrial widgets"]
    everything = await _search(client, tenant, "manufacturing machinery parts", "semantic")
    assert len(everything) == 4  # every embedded card has a distance
    scores = [c["score"] for c in everything]
    assert scores == sorted(scores, reverse=True)


async def test_hybrid_is_the_default_and_scores_are_ordered(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _seed(client, tenant, TOPICS)
    found = await _search(client, tenant, "subscription price increase")
    assert found[0]["title"] == "Pricing change"
    scores = [c["score"] for c in found]
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(s, float) and s > 0 for s in scores)


@pytest.mark.parametrize("mode", ["text", "semantic", "hybrid"])
async def test_filters_apply_before_ranking_so_results_never_come_back_short(
    client: httpx.AsyncClient, tenant: Tenant, mode: str
) -> None:
    many = [
        card("insight", f"Widget insight {i}", content={"text": "widgets widgets"})
        for i in range(40)
    ]
    few = [
        card("voice", f"Voice {i}", content={"text": f"widgets tone {i}"}, tags=["brand"])
        for i in range(5)
    ]
    await _seed(client, tenant, many[:20])
    await _seed(client, tenant, many[20:] + few)
    by_type = await _search(client, tenant, "widgets", mode, card_types=["voice"], limit=5)
    assert sorted(c["title"] for c in by_type) == [f"Voice {i}" for i in range(5)]
    by_tag = await _search(client, tenant, "widgets", mode, tags=["brand"], limit=5)
    assert len(by_tag) == 5


@pytest.mark.parametrize("mode", ["text", "semantic", "hybrid"])
async def test_archived_and_foreign_cards_never_match(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, mode: str
) -> None:
    mine = await _seed(client, tenant, TOPICS)
    theirs = await _seed(client, other_tenant, TOPICS)
    archived = mine[0]["id"]
    assert (
        await client.delete(f"/api/v1/cards/{archived}", headers=tenant.headers())
    ).status_code == 204
    found = await _search(client, tenant, "industrial widgets factories", mode)
    ids = {c["id"] for c in found}
    assert archived not in ids
    assert not ids & {c["id"] for c in theirs}
    assert all(c["tenant_id"] == str(tenant.id) for c in found)


async def test_a_changed_card_is_found_by_its_new_content(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await _seed(client, tenant, TOPICS)
    target = created[1]["id"]
    patched = await client.patch(
        f"/api/v1/cards/{target}",
        json={"title": "Solar panels", "content": {"text": "Rooftop photovoltaic energy systems"}},
        headers=tenant.headers(),
    )
    assert patched.status_code == 200
    found = await _search(client, tenant, "solar energy on the roof", "semantic", limit=1)
    assert [c["id"] for c in found] == [target]
    info = (await client.get("/api/v1/search/info", headers=tenant.headers())).json()
    assert info["pending"] == 0


async def test_a_batch_stores_each_cards_own_vector_new_or_upserted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A batch's vectors are stored by the statement that writes its cards, matched to them by
    id (new cards) or by external_ref (upserted ones, whose ids are their existing cards')."""
    first = await _seed(
        client,
        tenant,
        [
            card("product", "Widgets", content={"text": "Steel widgets"}, external_ref="p-1"),
            card("audience", "Hospital buyers", content={"text": "Procurement at clinics"}),
        ],
    )
    second = await _seed(
        client,
        tenant,
        [
            card("insight", "Bread", content={"text": "Sourdough baking at home"}),
            card(
                "product",
                "Solar panels",
                content={"text": "Rooftop photovoltaic energy systems"},
                external_ref="p-1",
            ),
        ],
    )
    assert second[1]["id"] == first[0]["id"]
    assert second[1]["version"] == 2
    info = (await client.get("/api/v1/search/info", headers=tenant.headers())).json()
    assert info["pending"] == 0
    for query, expected in [
        ("solar energy on the roof", second[1]["id"]),
        ("baking bread", second[0]["id"]),
        ("hospital procurement", first[1]["id"]),
    ]:
        found = await _search(client, tenant, query, "semantic", limit=1)
        assert [c["id"] for c in found] == [expected], query


async def test_written_cards_leave_no_search_work_pending(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    """A card's words go into the full-text index as it is written, not into a pending list that
    every later search would read whole (revision 0008, docs/database.md)."""
    await _seed(client, tenant, TOPICS * 10)
    async with owner_pool.acquire() as conn:
        merged = await conn.fetchval("SELECT gin_clean_pending_list('cards_tenant_id_search_idx')")
    assert merged == 0


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
@pytest.mark.parametrize("filtered", [False, True])
async def test_a_vector_of_an_older_version_never_ranks_the_card(
    client: httpx.AsyncClient,
    tenant: Tenant,
    owner_pool: asyncpg.Pool,
    mode: str,
    filtered: bool,
) -> None:
    """Until a changed card is embedded again, a vector made from an older version must not
    find it (unfiltered and filtered searches check this in different plans)."""
    created = await _seed(client, tenant, TOPICS)
    target, hospital = UUID(created[0]["id"]), UUID(created[2]["id"])
    patched = await client.patch(
        f"/api/v1/cards/{target}",
        json={"title": "Solar panels", "content": {"text": "Rooftop photovoltaic energy systems"}},
        headers=tenant.headers(),
    )
    assert patched.status_code == 200
    # The table holds, for the changed card, a vector of its version 1 that means "hospital
    # buyers": were it used, the card would rank beside the hospital card.
    async with owner_pool.acquire() as conn:
        updated = await conn.execute(
            "UPDATE card_embeddings e SET version = 1, embedding = o.embedding "
            "FROM card_embeddings o WHERE e.tenant_id = $1 AND e.card_id = $2 "
            "AND o.tenant_id = $1 AND o.card_id = $3 AND o.embedder = e.embedder",
            tenant.id,
            target,
            hospital,
        )
    assert updated == "UPDATE 1"
    filters: dict[str, Any] = {"card_types": ["product", "audience"]} if filtered else {}
    found = await _search(client, tenant, "hospital procurement clinics", mode, **filters)
    ids = [c["id"] for c in found]
    assert str(hospital) in ids
    assert str(target) not in ids


async def test_search_info_names_the_embedder_and_tokenizer(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _seed(client, tenant, TOPICS)
    response = await client.get("/api/v1/search/info", headers=tenant.headers())
    assert response.status_code == 200
    assert response.json() == {
        "embedder": "wordllama/l2_supercat_256",
        "dimension": 256,
        "pending": 0,
        "tokenizer": "cl100k_base",
    }


async def test_card_ids_with_a_query_keep_the_order_asked(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await _seed(client, tenant, TOPICS)
    ids = [created[3]["id"], created[0]["id"]]
    found = await _search(client, tenant, "widgets prices", "hybrid", card_ids=ids)
    assert [c["id"] for c in found] == ids
    assert all("score" in c for c in found)


async def test_a_mode_that_does_not_exist_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        RETRIEVE, json={"query": "x", "mode": "fuzzy"}, headers=tenant.headers()
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "mode"]
