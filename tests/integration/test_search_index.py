"""The in-process search index (`search/index.py`, `search/indexes.py`): it ranks exactly as the
SQL statements do, and it never answers for data that has changed since it was loaded, however
the change was made."""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from cards_api import metrics
from cards_api.db.queries.search import Filters
from cards_api.domain import search
from cards_api.domain.schemas import SearchMode
from cards_api.search.indexes import SIZE_RECHECK_SECONDS, SearchIndexes
from tests.support import Tenant, card

RETRIEVE = "/api/v1/cards/retrieve"
WORDS = """widget pricing hospital nurse steel factory launch brand voice budget river mountain
garden winter coffee invoice harbour railway engine signal market tenant quarter promise ladder
candle orbit velvet marble copper silver meadow""".split()  # noqa: SIM905
TYPES = ["company", "audience", "voice", "insight", "product"]


def _random_cards(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [
        card(
            TYPES[i % len(TYPES)],
            " ".join(rng.choices(WORDS, k=3)).capitalize(),
            content={"text": " ".join(rng.choices(WORDS, k=rng.randint(4, 30)))},
            tags=rng.sample(["red", "green", "blue"], k=rng.randint(0, 2)),
        )
        for i in range(count)
    ]


async def _seed(client: httpx.AsyncClient, tenant: Tenant, cards: list[dict[str, Any]]) -> None:
    for start in range(0, len(cards), 100):
        response = await client.post(
            "/api/v1/cards/batch",
            json={"cards": cards[start : start + 100]},
            headers=tenant.headers(),
        )
        assert response.status_code == 201, response.text


async def _search(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> list[dict[str, Any]]:
    response = await client.post(RETRIEVE, json=body, headers=tenant.headers())
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["cards"]
    return found


def _indexes(app: FastAPI) -> SearchIndexes:
    indexes: SearchIndexes = app.state.search_indexes
    return indexes


async def _load(app: FastAPI, tenant: Tenant) -> None:
    index = await _indexes(app).load_now(tenant.id, app.state.embedder.name)
    assert index is not None


def _assert_same_ranking(by_index: Sequence[Any], by_sql: Sequence[Any]) -> None:
    """The same cards, columns, scores and order; only cards whose scores differ by less than
    single-precision rounding (pgvector and NumPy sum cosines in different orders) may trade
    places, or places at the limit."""
    assert len(by_index) == len(by_sql)
    close = functools.partial(pytest.approx, rel=1e-6, abs=1e-6)
    for mine, theirs in zip(by_index, by_sql, strict=True):
        assert mine["score"] == close(theirs["score"])
    sql_rows = {row["id"]: row for row in by_sql}
    for row in by_index:
        if row["id"] in sql_rows:
            assert dict(row) == dict(sql_rows[row["id"]]) | {"score": row["score"]}
        else:  # taken at the limit instead of a card of the same score
            assert row["score"] == close(by_sql[-1]["score"])
    twins = [row["id"] for row in by_index if row["title"] == "Harbour coffee"]
    assert twins == sorted(twins)  # exact ties: by card id, as in SQL


def _assert_same_fusion(by_index: Sequence[Any], by_sql: Sequence[Any]) -> None:
    """Fused rankings agree as far as their parts do. Two cards whose distances differ by less
    than single-precision rounding may trade places in the semantic ranking (pgvector and NumPy
    sum in different orders), and each moves one place: a fused score changes by at most
    1/(61·62) and a card can enter or leave at the limit."""
    assert len(by_index) == len(by_sql)
    sql_scores = {row["id"]: row["score"] for row in by_sql}
    common = [row for row in by_index if row["id"] in sql_scores]
    assert len(common) >= len(by_sql) - 2
    for row in common:
        assert row["score"] == pytest.approx(sql_scores[row["id"]], abs=1 / (61 * 62) + 1e-9)
    twins = [row["id"] for row in by_index if row["title"] == "Harbour coffee"]
    assert twins == sorted(twins)


async def _by_hand(owner_pool: asyncpg.Pool, tenant: Tenant, sql: str, *args: Any) -> None:
    """A change made in SQL as the owner, not through the API; `$1` is the tenant."""
    async with owner_pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('cards.tenant_id', $1, true)", str(tenant.id))
        await conn.execute(sql, tenant.id, *args)


def _ranked() -> dict[str, float]:
    return {by: metrics.SEARCHES_RANKED.labels(by)._value.get() for by in ("index", "sql")}


@pytest.fixture
async def conn(app: FastAPI) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
    async with app.state.pool.acquire() as connection:
        yield connection


async def test_the_index_ranks_exactly_as_the_sql_statements(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, conn: Any
) -> None:
    rng = random.Random(7)
    twins = [card("insight", "Harbour coffee", content={"text": "river harbour coffee"})] * 6
    # Twins tie exactly in every ranking: the order among them is the card id's, both ways.
    await _seed(client, tenant, _random_cards(rng, 240) + twins)
    await _load(app, tenant)
    embedder = app.state.embedder
    voices = await _search(client, tenant, limit=100, card_types=["voice"])
    some_ids = [UUID(c["id"]) for c in voices]
    filters = [
        Filters(),
        Filters(card_types=["company", "voice"]),
        Filters(tags=["red"]),
        Filters(tags=["none-such"]),
        Filters(ids=some_ids[:15]),
        Filters(card_types=["insight"], tags=["blue", "green"]),
    ]
    compared = 0
    for round_ in range(12):
        words = [*WORDS, "the", "and", "unknownword"]
        query = " ".join(rng.choices(words, k=rng.randint(1, 6))) + " harbour"
        for mode in SearchMode:
            plan = await search.plan(embedder, query, mode)
            for where in filters:
                for limit in (1, 10, 120):
                    async with conn.transaction():
                        await conn.execute(
                            "SELECT set_config('cards.tenant_id', $1, true)", str(tenant.id)
                        )
                        args: dict[str, Any] = {
                            "tenant_id": tenant.id,
                            "filters": where,
                            "limit": limit,
                            # A context's candidates: the prompt's columns, from the index.
                            "prompt": round_ % 2 == 1,
                        }
                        by_index = await search.rank(conn, plan, indexes=_indexes(app), **args)
                        by_sql = await search.rank(conn, plan, **args)
                    if mode is SearchMode.HYBRID:
                        _assert_same_fusion(by_index, by_sql)
                    else:
                        _assert_same_ranking(by_index, by_sql)
                    compared += len(by_sql)
    assert compared > 2000  # the comparison saw real rankings, not empty lists


async def test_searches_use_the_index_once_it_is_loaded(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _seed(client, tenant, _random_cards(random.Random(1), 30))
    await _load(app, tenant)
    before = _ranked()
    for mode in ("text", "semantic", "hybrid"):
        assert await _search(client, tenant, query="widget pricing", mode=mode)
    response = await client.post(
        "/api/v1/context",
        json={"task": "widget pricing", "token_budget": 500},
        headers=tenant.headers(),
    )
    assert response.status_code == 200
    after = _ranked()
    assert after["index"] - before["index"] == 4
    assert after["sql"] == before["sql"]


async def test_a_write_is_found_by_the_very_next_search(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    """Created, changed, archived, embedded, or changed by hand in SQL: the next search sees it,
    although the index was loaded before."""
    await _seed(client, tenant, _random_cards(random.Random(2), 20))

    async def titles(query: str, mode: str = "text") -> list[str]:
        return [c["title"] for c in await _search(client, tenant, query=query, mode=mode)]

    await _load(app, tenant)
    created = await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card("insight", "Zeppelin fares", content={"text": "airship"})]},
        headers=tenant.headers(),
    )
    assert created.status_code == 201
    new = created.json()["cards"][0]
    assert await titles("zeppelin") == ["Zeppelin fares"]

    await _load(app, tenant)
    patched = await client.patch(
        f"/api/v1/cards/{new['id']}",
        json={"title": "Balloon fares"},
        headers=tenant.headers(**{"If-Match": f'"{new["version"]}"'}),
    )
    assert patched.status_code == 200, patched.text
    assert await titles("zeppelin") == []
    assert await titles("balloon") == ["Balloon fares"]

    await _load(app, tenant)
    await _by_hand(
        owner_pool,
        tenant,
        "UPDATE cards SET title = 'Dirigible fares' WHERE tenant_id = $1 AND id = $2",
        new["id"],
    )
    assert await titles("dirigible") == ["Dirigible fares"]

    async def context(task: str) -> str:
        response = await client.post(
            "/api/v1/context", json={"task": task, "token_budget": 2000}, headers=tenant.headers()
        )
        assert response.status_code == 200, response.text
        text: str = response.json()["text"]
        return text

    # A context's cards come from the index's own copy of them: never one older than the data.
    await _load(app, tenant)
    before = _ranked()
    assert "### Dirigible fares\ntext: airship\n" in await context("dirigible")
    assert _ranked()["index"] == before["index"] + 1  # taken from the copy
    await _by_hand(
        owner_pool,
        tenant,
        """UPDATE cards SET content = '{"text": "hydrogen airship"}'
           WHERE tenant_id = $1 AND id = $2""",
        new["id"],
    )
    assert "### Dirigible fares\ntext: hydrogen airship\n" in await context("dirigible")

    await _load(app, tenant)
    await _by_hand(
        owner_pool,
        tenant,
        "DELETE FROM card_embeddings WHERE tenant_id = $1 AND card_id = $2",
        new["id"],
    )
    # Without its vector the card has no place in a semantic ranking.
    semantic = await titles("dirigible", "semantic")
    assert "Dirigible fares" not in semantic
    assert len(semantic) == 20  # every other card

    await _load(app, tenant)
    archived = await client.delete(f"/api/v1/cards/{new['id']}", headers=tenant.headers())
    assert archived.status_code == 204
    assert await titles("dirigible") == []
    for mode in ("semantic", "hybrid"):
        assert "Dirigible fares" not in await titles("dirigible fares", mode)


async def test_usage_and_rolled_back_writes_leave_the_index_current(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    """Usage is recorded far more often than cards change: it must not send searches to SQL."""
    await _seed(client, tenant, _random_cards(random.Random(3), 10))
    await _load(app, tenant)
    found = await _search(client, tenant, query="widget river coffee", mode="text", limit=3)
    for item in found:
        response = await client.post(
            f"/api/v1/cards/{item['id']}/usage",
            json={"workflow_id": "wf-1", "workflow_type": "newsletter"},
            headers=tenant.headers(),
        )
        assert response.status_code in (200, 201), response.text
    async with owner_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("SELECT set_config('cards.tenant_id', $1, true)", str(tenant.id))
        await conn.execute("UPDATE cards SET title = 'Gone' WHERE tenant_id = $1", tenant.id)
        await transaction.rollback()
    before = _ranked()
    assert await _search(client, tenant, query="widget river coffee", mode="text", limit=3)
    assert _ranked()["index"] == before["index"] + 1


async def test_another_tenants_index_never_answers(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _seed(client, tenant, [card("insight", "Secret harbour plan")])
    await _seed(client, other_tenant, [card("insight", "Public harbour notes")])
    await _load(app, tenant)
    await _load(app, other_tenant)
    for mode in ("text", "semantic", "hybrid"):
        mine = await _search(client, tenant, query="harbour plan", mode=mode)
        theirs = await _search(client, other_tenant, query="harbour plan", mode=mode)
        assert [c["title"] for c in mine] == ["Secret harbour plan"]
        assert [c["title"] for c in theirs] == ["Public harbour notes"]


async def test_tenants_too_small_or_too_large_for_an_index_are_searched_by_sql(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, conn: Any
) -> None:
    await _seed(client, tenant, _random_cards(random.Random(4), 12))
    embedder = app.state.embedder.name
    for bounds in ({"max_cards": 5}, {"max_cards": 1000, "min_cards": 13}):
        indexes = SearchIndexes(app.state.pool, **bounds)
        assert await indexes.load_now(tenant.id, embedder) is None
        assert indexes.cards == 0
        plan = await search.plan(app.state.embedder, "widget", SearchMode.TEXT)
        async with conn.transaction():
            await conn.execute("SELECT set_config('cards.tenant_id', $1, true)", str(tenant.id))
            before = _ranked()
            rows = await search.rank(
                conn, plan, tenant_id=tenant.id, filters=Filters(), limit=10, indexes=indexes
            )
        assert _ranked()["sql"] == before["sql"] + 1
        assert rows
        assert all("widget" in (r["title"] + str(r["content"])).lower() for r in rows)
        await indexes.close()
    exact = SearchIndexes(app.state.pool, max_cards=12, min_cards=12)
    assert await exact.load_now(tenant.id, embedder) is not None
    assert exact.cards == 12


async def test_small_tenants_are_counted_again_minutes_later_and_not_all_at_once(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """A search of a tenant too small for an index does not count its cards again each time,
    and a thousand small tenants counted together do not all come due in the same seconds."""
    embedder = app.state.embedder.name
    indexes = SearchIndexes(app.state.pool, max_cards=1000, min_cards=100)
    due = []
    for who in (tenant, other_tenant):
        await _seed(client, who, _random_cards(random.Random(5), 3))
        counted = time.monotonic()
        assert await indexes.load_now(who.id, embedder) is None
        due.append(indexes._not_before[(who.id, embedder)] - counted)
        assert indexes.current(who.id, embedder) is None
        assert not indexes._queue  # not counted again on this search
    assert all(0.5 * SIZE_RECHECK_SECONDS - 5 <= d <= 1.5 * SIZE_RECHECK_SECONDS for d in due)
    assert due[0] != due[1]
    await indexes.close()


async def test_a_tenant_gets_an_index_once_it_is_searched_often(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Searched now and then, a tenant is ranked by SQL and costs the process nothing more;
    searched often, its index is loaded in the background."""
    embedder = app.state.embedder.name
    for who in (tenant, other_tenant):
        await _seed(client, who, _random_cards(random.Random(6), 5))
    indexes = SearchIndexes(app.state.pool, max_cards=1000, min_searches=3)
    assert indexes.current(tenant.id, embedder) is None
    assert indexes.current(tenant.id, embedder) is None
    assert indexes.current(other_tenant.id, embedder) is None
    assert not indexes._queue  # two searches, and one of the other tenant: nothing loaded
    assert indexes.current(tenant.id, embedder) is None  # the third: a load is queued
    assert indexes._loader is not None
    await asyncio.wait_for(indexes._loader, timeout=10)
    assert indexes.current(tenant.id, embedder) is not None
    assert indexes.cards == 5  # this tenant's, not the other's
    await indexes.close()
