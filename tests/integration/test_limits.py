"""Shared resources hold: a key over its rate gets a 429 with Retry-After (declared everywhere),
a pooled connection never carries a tenant into the next request, and a statement over its
timeout is a 503 with nothing half-done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from cards_api.settings import Settings
from tests.support import Tenant, card, client_for, issue_tenant


@pytest.fixture
async def limited_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(
        settings.model_copy(update={"rate_limit": 5, "rate_limit_burst": 5})
    ) as http:
        yield http


async def test_a_key_over_its_rate_gets_429_with_retry_after(
    limited_client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    statuses = [
        (await limited_client.get("/api/v1/cards", headers=tenant.headers())).status_code
        for _ in range(5)
    ]
    assert statuses == [200] * 5
    limited = await limited_client.get("/api/v1/cards", headers=tenant.headers())
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["type"].endswith("/rate-limited")
    assert int(limited.headers["Retry-After"]) >= 1
    # Another key has its own bucket; and the first refills at 5 per second.
    assert (
        await limited_client.get("/api/v1/cards", headers=other_tenant.headers())
    ).status_code == 200
    await asyncio.sleep(0.25)
    assert (await limited_client.get("/api/v1/cards", headers=tenant.headers())).status_code == 200


async def test_the_limit_is_declared_on_every_api_operation(
    limited_client: httpx.AsyncClient,
) -> None:
    document = (await limited_client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            assert "429" in operation["responses"], (method, path)
            assert "Retry-After" in operation["responses"]["429"]["headers"]


@pytest.fixture
async def single_connection_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(
        settings.model_copy(update={"pool_min_size": 1, "pool_max_size": 1})
    ) as http:
        yield http


async def test_one_pooled_connection_never_carries_a_tenant_into_the_next_request(
    single_connection_client: httpx.AsyncClient, owner_pool: asyncpg.Pool
) -> None:
    tenants = [await issue_tenant(owner_pool) for _ in range(4)]
    own_ids: dict[str, set[str]] = {}
    for t in tenants:
        created = await single_connection_client.post(
            "/api/v1/cards/batch",
            json={"cards": [card(title=f"{t.id} {i}", tags=["shared"]) for i in range(3)]},
            headers=t.headers(),
        )
        own_ids[str(t.id)] = {c["id"] for c in created.json()["cards"]}

    async def one(i: int) -> tuple[str, list[dict[str, object]]]:
        t = tenants[i % len(tenants)]
        if i % 3 == 0:
            response = await single_connection_client.get("/api/v1/cards", headers=t.headers())
        elif i % 3 == 1:
            body = {"tags": ["shared"]}
            response = await single_connection_client.post(
                "/api/v1/cards/retrieve", json=body, headers=t.headers()
            )
        else:
            # Ask for every tenant's cards by id: only one's own may come back.
            everyone = [cid for ids in own_ids.values() for cid in ids]
            response = await single_connection_client.post(
                "/api/v1/cards/retrieve", json={"card_ids": everyone}, headers=t.headers()
            )
        assert response.status_code == 200
        cards: list[dict[str, object]] = response.json()["cards"]
        return str(t.id), cards

    # 2,000 requests interleave 4 tenants and 3 kinds of read over 160 times each on the one
    # connection: a tenant carried over would show in many of them.
    requests = 2_000
    foreign = 0
    for start in range(0, requests, 50):  # 50 in flight at once, queued on the one connection
        for tenant_id, cards in await asyncio.gather(*(one(i) for i in range(start, start + 50))):
            assert {c["id"] for c in cards} == own_ids[tenant_id]
            foreign += sum(c["tenant_id"] != tenant_id for c in cards)
    assert foreign == 0


async def test_every_pooled_connection_has_statement_and_lock_timeouts(app: FastAPI) -> None:
    settings = app.state.settings
    async with app.state.pool.acquire() as conn:
        statement = await conn.fetchval("SELECT current_setting('statement_timeout')")
        lock = await conn.fetchval("SELECT current_setting('lock_timeout')")
        role = await conn.fetchval("SELECT current_user")
    assert statement == f"{settings.statement_timeout_ms // 1000}s"
    assert lock == f"{settings.lock_timeout_ms // 1000}s"
    assert role == settings.roles(settings.database_url or "").app


async def test_a_query_over_the_statement_timeout_is_cancelled(app: FastAPI) -> None:
    async with app.state.pool.acquire() as conn:
        await conn.execute("SET statement_timeout = '100ms'")
        try:
            with pytest.raises(asyncpg.exceptions.QueryCanceledError):
                await conn.execute("SELECT pg_sleep(2)")
        finally:
            await conn.execute("RESET statement_timeout")


async def test_a_request_over_the_statement_timeout_is_a_503_problem(
    settings: Settings, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    update = {"statement_timeout_ms": 300, "lock_timeout_ms": 10_000}
    async with client_for(settings.model_copy(update=update)) as http:
        created = await http.post(
            "/api/v1/cards/batch", json={"cards": [card()]}, headers=tenant.headers()
        )
        card_id = created.json()["cards"][0]["id"]
        # Another transaction holds the card's row: the PATCH waits until its statement times out.
        async with owner_pool.acquire() as blocker, blocker.transaction():
            await blocker.execute("SELECT 1 FROM cards WHERE tenant_id = $1 FOR UPDATE", tenant.id)
            response = await http.patch(
                f"/api/v1/cards/{card_id}", json={"title": "Too slow"}, headers=tenant.headers()
            )
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["Retry-After"] == "1"
        assert "database" in response.json()["detail"]
        # Nothing was half-done, and the pool serves the next request.
        again = await http.get(f"/api/v1/cards/{card_id}", headers=tenant.headers())
        assert again.json()["title"] == "Acme Corp"
        assert again.json()["version"] == 1
