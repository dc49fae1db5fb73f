"""Revocation holds under concurrency: once revoking returns, no request that starts later is
accepted beyond the documented bound (the notice's trip, well under a second), also while the
revocation listener is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from cards_api import auth
from cards_api.db.pool import LISTENER_APPLICATION_NAME
from cards_api.settings import Settings
from tests.support import Tenant, app_and_client_for, client_for

BOUND_S = 1.0  # README: a revoked key is refused within a second everywhere


@pytest.fixture
async def cached_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # A long cache: only the notice (or its absence turning caching off) can end a key early.
    async with client_for(settings.model_copy(update={"key_cache_ttl": 60.0})) as http:
        yield http


async def _revoke(owner_pool: asyncpg.Pool, tenant: Tenant) -> float:
    async with owner_pool.acquire() as conn:
        key_id = await conn.fetchval("SELECT id FROM api_keys WHERE tenant_id = $1", tenant.id)
        assert await auth.revoke_key(conn, key_id=key_id) is not None
    return time.monotonic()


async def _race(
    client: httpx.AsyncClient, tenant: Tenant, revoke: asyncio.Task[float]
) -> list[tuple[float, int]]:
    """8 clients hammer the key from before the revocation until well after it."""
    outcomes: list[tuple[float, int]] = []

    async def hammer() -> None:
        while not revoke.done() or time.monotonic() < revoke.result() + BOUND_S + 0.5:
            started = time.monotonic()
            response = await client.get("/api/v1/cards", headers=tenant.headers())
            outcomes.append((started, response.status_code))

    await asyncio.gather(*(hammer() for _ in range(8)))
    return outcomes


async def _revocation_holds_under_a_race(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool, *, after: float
) -> None:
    """The key works, is revoked `after` seconds into the race, and is refused by every request
    that starts later than the bound."""
    assert (await client.get("/api/v1/cards", headers=tenant.headers())).status_code == 200

    async def revoke_soon() -> float:
        await asyncio.sleep(after)
        return await _revoke(owner_pool, tenant)

    revoke = asyncio.create_task(revoke_soon())
    outcomes = await _race(client, tenant, revoke)
    revoked_at = revoke.result()
    assert {status for _, status in outcomes} <= {200, 401}
    assert any(status == 200 for started, status in outcomes if started < revoked_at)
    late = [status for started, status in outcomes if started > revoked_at + BOUND_S]
    assert late, "no request after the bound"
    assert set(late) == {401}


async def test_revocation_racing_eight_concurrent_requests(
    cached_client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    await _revocation_holds_under_a_race(cached_client, tenant, owner_pool, after=0.2)


async def test_revocation_holds_while_the_listener_is_down(
    cached_client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    assert (await cached_client.get("/api/v1/cards", headers=tenant.headers())).status_code == 200
    async with owner_pool.acquire() as conn:  # the listener's connection dies under it
        terminated = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            LISTENER_APPLICATION_NAME,
        )
    assert terminated >= 1
    deadline = time.monotonic() + 5
    while "cards_api_revocation_listener_up 0.0" not in (await cached_client.get("/metrics")).text:
        assert time.monotonic() < deadline, "the listener's loss was never noticed"
        await asyncio.sleep(0.01)
    revoked_at = await _revoke(owner_pool, tenant)
    while time.monotonic() < revoked_at + BOUND_S + 0.5:
        started = time.monotonic()
        status = (await cached_client.get("/api/v1/cards", headers=tenant.headers())).status_code
        if started > revoked_at + BOUND_S:
            assert status == 401
        await asyncio.sleep(0.02)


# --- expired entries: answered while looked up again, never past a revocation --------------

SHORT_TTL_S = 0.3


@contextlib.asynccontextmanager
async def _short_lived_cache(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """An app whose key-cache entries expire within a third of a second, and its key cache."""
    short = settings.model_copy(update={"key_cache_ttl": SHORT_TTL_S})
    async with app_and_client_for(short) as (app, http):
        yield http, app.state.guards.keys


async def _fresh_within(keys: Any, key_hash: bytes, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while keys.get(key_hash) is None:
        assert time.monotonic() < deadline, "the expired key was never looked up again"
        await asyncio.sleep(0.01)


async def test_an_expired_key_answers_without_waiting_for_its_look_up(
    settings: Settings, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    """After a quiet spell a tenant's next request is answered from the expired entry while the
    key is looked up again in the background: shown with the keys table locked, so that a
    look-up in the request's path could not finish until the lock is gone."""
    key_hash = auth.hash_key(tenant.key)
    async with _short_lived_cache(settings) as (http, keys):
        assert (await http.get("/api/v1/cards", headers=tenant.headers())).status_code == 200
        await asyncio.sleep(SHORT_TTL_S * 1.1)
        assert keys.get(key_hash) is None  # expired
        async with owner_pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
            response = await asyncio.wait_for(
                http.get("/api/v1/cards", headers=tenant.headers()), timeout=5
            )
            assert response.status_code == 200
            assert keys.get(key_hash) is None  # its look-up waits for the lock
        await _fresh_within(keys, key_hash, seconds=5)


async def test_a_key_revoked_while_no_notice_came_ends_within_twice_the_ttl(
    settings: Settings, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    """The TTL is the last resort behind the notices: with the notice lost (the trigger off
    for the revoking transaction), an expired entry answers only until its look-up, redone in
    the background, finds the key revoked; never longer than its life and one TTL more."""
    async with _short_lived_cache(settings) as (http, _keys):
        assert (await http.get("/api/v1/cards", headers=tenant.headers())).status_code == 200
        async with owner_pool.acquire() as conn, conn.transaction():
            await conn.execute("ALTER TABLE api_keys DISABLE TRIGGER api_keys_notify_change")
            await conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1", tenant.id
            )
            await conn.execute("ALTER TABLE api_keys ENABLE TRIGGER api_keys_notify_change")
        revoked_at = time.monotonic()
        statuses = []
        while time.monotonic() < revoked_at + 2 * SHORT_TTL_S + BOUND_S:
            started = time.monotonic()
            status = (await http.get("/api/v1/cards", headers=tenant.headers())).status_code
            statuses.append(status)
            if started > revoked_at + 2 * SHORT_TTL_S + 0.1:
                assert status == 401, "an expired entry answered past its grace"
            await asyncio.sleep(0.01)
        assert statuses[-1] == 401
        # The stale answer stops at the first look-up: no 200 after the first 401.
        first_refusal = statuses.index(401)
        assert set(statuses[first_refusal:]) == {401}


async def test_revocation_holds_while_entries_expire_all_the_time(
    settings: Settings, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    """The race above with entries expiring every third of a second, so that most requests
    meet an expired entry: the notice empties those too."""
    async with _short_lived_cache(settings) as (http, _keys):
        await _revocation_holds_under_a_race(http, tenant, owner_pool, after=0.5)
