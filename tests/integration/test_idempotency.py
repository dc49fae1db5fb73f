"""One Idempotency-Key, one effect: the same request replays the first response byte for byte,
a different one is a 422, keys are per tenant, concurrent uses create one set, expiry frees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from cards_api import idempotency
from cards_api.settings import Settings
from tests.support import SEED_CARDS, Tenant, card, client_for, count_rows

BATCH = "/api/v1/cards/batch"


async def test_replay_returns_the_first_response_byte_for_byte(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    headers = tenant.headers(**{"Idempotency-Key": "onboarding-run-1"})
    first = await client.post(BATCH, json={"cards": SEED_CARDS}, headers=headers)
    again = await client.post(BATCH, json={"cards": SEED_CARDS}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert first.headers["Idempotent-Replayed"] == "false"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert await count_rows(owner_pool, "cards", tenant.id) == 4
    assert await count_rows(owner_pool, "card_versions", tenant.id) == 4


async def test_key_order_in_the_body_does_not_matter(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = tenant.headers(**{"Idempotency-Key": "k", "Content-Type": "application/json"})
    first = await client.post(
        BATCH,
        content='{"cards":[{"card_type":"voice","title":"A","content":{"x":1,"y":2}}]}',
        headers=headers,
    )
    again = await client.post(
        BATCH,
        content='{"cards": [{"content": {"y": 2, "x": 1}, "title": "A", "card_type": "voice"}]}',
        headers=headers,
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content


async def test_same_key_with_a_different_request_is_422_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    headers = tenant.headers(**{"Idempotency-Key": "reused"})
    await client.post(BATCH, json={"cards": [card(title="One")]}, headers=headers)
    response = await client.post(BATCH, json={"cards": [card(title="Two")]}, headers=headers)

    assert response.status_code == 422
    assert response.json()["type"].endswith("/idempotency-key-reused")
    assert await count_rows(owner_pool, "cards", tenant.id) == 1


async def test_without_a_key_each_request_creates_cards(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    for _ in range(2):
        response = await client.post(BATCH, json={"cards": [card()]}, headers=tenant.headers())
        assert "Idempotent-Replayed" not in response.headers
    assert await count_rows(owner_pool, "cards", tenant.id) == 2


async def test_keys_are_scoped_to_the_tenant(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    body = {"cards": [card()]}
    mine = await client.post(
        BATCH, json=body, headers=tenant.headers(**{"Idempotency-Key": "shared"})
    )
    theirs = await client.post(
        BATCH, json=body, headers=other_tenant.headers(**{"Idempotency-Key": "shared"})
    )

    assert theirs.headers["Idempotent-Replayed"] == "false"
    assert theirs.json()["cards"][0]["tenant_id"] == str(other_tenant.id)
    assert mine.json()["cards"][0]["id"] != theirs.json()["cards"][0]["id"]
    assert await count_rows(owner_pool, "cards", other_tenant.id) == 1


async def test_rejected_requests_store_nothing(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    headers = tenant.headers(**{"Idempotency-Key": "after-a-mistake"})
    bad = await client.post(BATCH, json={"cards": [card("nope")]}, headers=headers)
    assert bad.status_code == 422
    assert await count_rows(owner_pool, "idempotency_records", tenant.id) == 0

    good = await client.post(BATCH, json={"cards": [card()]}, headers=headers)
    assert good.status_code == 201
    assert good.headers["Idempotent-Replayed"] == "false"


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tkey", "ключ"])
async def test_malformed_key_is_400(client: httpx.AsyncClient, tenant: Tenant, key: str) -> None:
    headers = tenant.headers()
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"idempotency-key", key.encode("utf-8")))
    response = await client.post(BATCH, json={"cards": [card()]}, headers=raw_headers)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]


async def test_sixteen_concurrent_requests_with_one_key_create_one_set(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    headers = tenant.headers(**{"Idempotency-Key": "burst"})
    responses = await asyncio.gather(
        *(client.post(BATCH, json={"cards": SEED_CARDS}, headers=headers) for _ in range(16))
    )

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    successes = [r for r in responses if r.status_code == 201]
    assert [r.headers["Idempotent-Replayed"] for r in successes].count("false") == 1
    assert len({r.content for r in successes}) == 1
    assert await count_rows(owner_pool, "cards", tenant.id) == 4


async def test_an_expired_record_lets_the_key_run_again(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    headers = tenant.headers(**{"Idempotency-Key": "old"})
    await client.post(BATCH, json={"cards": [card()]}, headers=headers)
    async with owner_pool.acquire() as conn:
        await conn.execute(
            "UPDATE idempotency_records SET expires_at = now() - interval '1 second' "
            "WHERE tenant_id = $1",
            tenant.id,
        )
    again = await client.post(BATCH, json={"cards": [card()]}, headers=headers)

    assert again.headers["Idempotent-Replayed"] == "false"
    assert await count_rows(owner_pool, "cards", tenant.id) == 2


async def test_records_expire_after_the_configured_ttl(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool, app: FastAPI
) -> None:
    await client.post(
        BATCH, json={"cards": [card()]}, headers=tenant.headers(**{"Idempotency-Key": "t"})
    )
    async with owner_pool.acquire() as conn:
        ttl = await conn.fetchval(
            "SELECT extract(epoch FROM expires_at - created_at) FROM idempotency_records "
            "WHERE tenant_id = $1",
            tenant.id,
        )
    assert float(ttl) == pytest.approx(app.state.settings.idempotency_ttl, abs=1)


async def test_purge_removes_expired_records_of_every_tenant_and_nothing_else(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    owner_pool: asyncpg.Pool,
    app: FastAPI,
) -> None:
    for who in (tenant, other_tenant):
        for key in ("expired", "fresh"):
            await client.post(
                BATCH, json={"cards": [card()]}, headers=who.headers(**{"Idempotency-Key": key})
            )
    async with owner_pool.acquire() as conn:
        await conn.execute(
            "UPDATE idempotency_records SET expires_at = now() - interval '1 minute' "
            "WHERE tenant_id = ANY($1::uuid[]) AND key = 'expired'",
            [tenant.id, other_tenant.id],
        )

    deleted = await idempotency.purge_expired(app.state.pool)

    assert deleted >= 2
    async with owner_pool.acquire() as conn:
        left = await conn.fetch(
            "SELECT tenant_id, key FROM idempotency_records WHERE tenant_id = ANY($1::uuid[])",
            [tenant.id, other_tenant.id],
        )
    assert sorted((r["tenant_id"], r["key"]) for r in left) == sorted(
        [(tenant.id, "fresh"), (other_tenant.id, "fresh")]
    )
    assert await count_rows(owner_pool, "cards", tenant.id) == 2


@pytest.fixture
async def impatient_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose lock timeout is short, so a request stuck behind another gives up fast."""
    async with client_for(settings.model_copy(update={"lock_timeout_ms": 200})) as http:
        yield http


async def test_a_key_whose_first_request_is_still_running_is_409(
    impatient_client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    body = {"cards": [card()]}
    headers = tenant.headers(**{"Idempotency-Key": "in-flight"})
    async with owner_pool.acquire() as conn:
        first = conn.transaction()
        await first.start()
        # Stands for a first request that has claimed the key and not yet committed.
        await conn.execute(
            "INSERT INTO idempotency_records (tenant_id, key, fingerprint, expires_at) "
            "VALUES ($1, 'in-flight', '\\x00', now() + interval '1 hour')",
            tenant.id,
        )
        response = await impatient_client.post(BATCH, json=body, headers=headers)
        await first.rollback()

    assert response.status_code == 409
    assert response.json()["type"].endswith("/request-in-progress")
    assert await count_rows(owner_pool, "cards", tenant.id) == 0
    # The first request failed and stored nothing: the retry now runs.
    retry = await impatient_client.post(BATCH, json=body, headers=headers)
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "false"
