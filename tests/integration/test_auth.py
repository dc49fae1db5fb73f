"""Every route answers only a valid, unrevoked key of the tenant in `X-Tenant-ID` holding the
route's scope: the same 401 for every bad key, 400 for a bad tenant header, 403 otherwise."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from cards_api import auth
from cards_api.auth import Scope
from cards_api.settings import AuthMode, Settings
from tests.support import Tenant, card, client_for, issue_key, issue_tenant

CARD = "/api/v1/cards/{card_id}"

# (method, path template, JSON body, scope the route needs)
ROUTES: list[tuple[str, str, dict[str, Any] | None, Scope]] = [
    ("POST", "/api/v1/cards/batch", {"cards": [card()]}, Scope.CARDS_WRITE),
    ("POST", "/api/v1/cards/retrieve", {"card_types": ["company"]}, Scope.CARDS_READ),
    ("GET", "/api/v1/cards", None, Scope.CARDS_READ),
    ("GET", CARD, None, Scope.CARDS_READ),
    ("PATCH", CARD, {"title": "x"}, Scope.CARDS_WRITE),
    ("DELETE", CARD, None, Scope.CARDS_WRITE),
    ("GET", CARD + "/versions", None, Scope.CARDS_READ),
    ("POST", CARD + "/usage", {"workflow_id": "w", "workflow_type": "t"}, Scope.USAGE_WRITE),
    ("GET", CARD + "/usage", None, Scope.CARDS_READ),
    ("GET", "/api/v1/usage/summary", None, Scope.CARDS_READ),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _, _ in ROUTES]


async def _card_id(client: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await client.post(
        "/api/v1/cards/batch", json={"cards": [card()]}, headers=tenant.headers()
    )
    card_id: str = response.json()["cards"][0]["id"]
    return card_id


async def _call(
    client: httpx.AsyncClient,
    route: tuple[str, str, dict[str, Any] | None, Scope],
    card_id: str,
    headers: dict[str, str],
) -> httpx.Response:
    method, path, body, _ = route
    return await client.request(method, path.format(card_id=card_id), json=body, headers=headers)


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_every_route_works_with_a_key_holding_its_scope(
    client: httpx.AsyncClient,
    owner_pool: asyncpg.Pool,
    route: tuple[str, str, dict[str, Any] | None, Scope],
) -> None:
    owner = await issue_tenant(owner_pool)
    card_id = await _card_id(client, owner)
    narrow = Tenant(id=owner.id, key=await issue_key(owner_pool, owner.id, {route[3]}))
    response = await _call(client, route, card_id, narrow.headers())
    assert response.status_code < 300, response.text


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_every_route_is_403_without_its_scope(
    client: httpx.AsyncClient,
    owner_pool: asyncpg.Pool,
    route: tuple[str, str, dict[str, Any] | None, Scope],
) -> None:
    owner = await issue_tenant(owner_pool)
    card_id = await _card_id(client, owner)
    others = set(Scope) - {route[3]}
    narrow = Tenant(id=owner.id, key=await issue_key(owner_pool, owner.id, others))
    response = await _call(client, route, card_id, narrow.headers())
    assert response.status_code == 403
    assert route[3].value in response.json()["detail"]


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_every_route_is_401_without_a_key(
    client: httpx.AsyncClient, tenant: Tenant, route: tuple[str, str, dict[str, Any] | None, Scope]
) -> None:
    response = await _call(client, route, str(uuid.uuid4()), {"X-Tenant-ID": str(tenant.id)})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _tamper(key: str) -> str:
    last = key[-1]
    return key[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize(
    "make_key",
    [
        lambda t, secret: auth.generate_key(t.id, secret),  # well formed, never issued
        lambda t, secret: auth.generate_key(t.id, b"not this deployment's secret")[:-1] + "x",
        lambda t, _: _tamper(t.key),  # tag broken
        lambda t, _: t.key[:-3],  # truncated
        lambda t, _: "sk_live_" + t.key[6:],  # foreign prefix
        lambda t, _: "",
    ],
    ids=["unknown", "forged", "bad-tag", "truncated", "wrong-prefix", "empty"],
)
async def test_invalid_keys_get_the_same_401(
    client: httpx.AsyncClient, tenant: Tenant, make_key: Any, key_secret: bytes
) -> None:
    key = make_key(tenant, key_secret)
    headers = {"Authorization": f"Bearer {key}", "X-Tenant-ID": str(tenant.id)}
    response = await client.get("/api/v1/cards", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "the API key is invalid or revoked"


async def test_basic_scheme_is_401(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = {"Authorization": f"Basic {tenant.key}", "X-Tenant-ID": str(tenant.id)}
    assert (await client.get("/api/v1/cards", headers=headers)).status_code == 401


async def _status_within(
    client: httpx.AsyncClient, tenant: Tenant, expected: int, seconds: float
) -> float:
    """Poll until the key gets `expected`; return how long that took."""
    started = time.monotonic()
    while True:
        status = (await client.get("/api/v1/cards", headers=tenant.headers())).status_code
        elapsed = time.monotonic() - started
        if status == expected:
            return elapsed
        assert elapsed < seconds, f"still {status} after {elapsed:.1f}s"
        await asyncio.sleep(0.02)


async def test_a_revoked_key_stops_working_at_once(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool, app: FastAPI
) -> None:
    keys = app.state.guards.keys
    assert (await client.get("/api/v1/cards", headers=tenant.headers())).status_code == 200
    assert len(keys) > 0  # the key is cached now
    async with owner_pool.acquire() as conn:
        key_id = await conn.fetchval("SELECT id FROM api_keys WHERE tenant_id = $1", tenant.id)
        assert await auth.revoke_key(conn, key_id=key_id) is not None
    # The revocation notice empties every process's cache, well before the cache's TTL.
    assert await _status_within(client, tenant, 401, seconds=3.0)
    response = await client.get("/api/v1/cards", headers=tenant.headers())
    assert response.json()["detail"] == "the API key is invalid or revoked"


async def test_a_key_revoked_by_hand_in_sql_stops_working_at_once(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool, app: FastAPI
) -> None:
    """Not only `keys revoke`: a trigger notifies for any revocation, well before the TTL."""
    assert (await client.get("/api/v1/cards", headers=tenant.headers())).status_code == 200
    assert len(app.state.guards.keys) > 0  # cached
    async with owner_pool.acquire() as conn:  # behind the CLI's back
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1", tenant.id)
    assert app.state.settings.key_cache_ttl >= 30
    await _status_within(client, tenant, 401, seconds=3.0)


async def test_a_key_whose_scopes_change_is_looked_up_again(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    assert (await client.get("/api/v1/cards", headers=tenant.headers())).status_code == 200
    async with owner_pool.acquire() as conn:
        await conn.execute(
            "UPDATE api_keys SET scopes = '{usage:write}' WHERE tenant_id = $1", tenant.id
        )
    await _status_within(client, tenant, 403, seconds=3.0)


async def test_missing_tenant_header_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/api/v1/cards", headers={"Authorization": f"Bearer {tenant.key}"})
    assert response.status_code == 400
    assert "X-Tenant-ID" in response.json()["detail"]


@pytest.mark.parametrize("value", ["not-a-uuid", "12345", "   "])
async def test_malformed_tenant_header_is_400(
    client: httpx.AsyncClient, tenant: Tenant, value: str
) -> None:
    response = await client.get("/api/v1/cards", headers=tenant.headers(**{"X-Tenant-ID": value}))
    assert response.status_code == 400
    assert "X-Tenant-ID" in response.json()["detail"]


async def test_tenant_header_differing_from_the_keys_tenant_is_403(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = await client.get(
        "/api/v1/cards", headers=tenant.headers(**{"X-Tenant-ID": str(other_tenant.id)})
    )
    assert response.status_code == 403
    assert "X-Tenant-ID" in response.json()["detail"]


@pytest.fixture
async def header_mode_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings.model_copy(update={"auth_mode": AuthMode.HEADER})) as http:
        yield http


async def test_header_mode_trusts_x_tenant_id_alone(header_mode_client: httpx.AsyncClient) -> None:
    tenant_id = str(uuid.uuid4())
    created = await header_mode_client.post(
        "/api/v1/cards/batch", json={"cards": [card()]}, headers={"X-Tenant-ID": tenant_id}
    )
    assert created.status_code == 201
    assert created.json()["cards"][0]["tenant_id"] == tenant_id
    usage = await header_mode_client.post(
        f"/api/v1/cards/{created.json()['cards'][0]['id']}/usage",
        json={"workflow_id": "w", "workflow_type": "t"},
        headers={"X-Tenant-ID": tenant_id},
    )
    assert usage.status_code == 200


async def test_header_mode_still_requires_a_valid_tenant(
    header_mode_client: httpx.AsyncClient,
) -> None:
    assert (await header_mode_client.get("/api/v1/cards")).status_code == 400
    bad = await header_mode_client.get("/api/v1/cards", headers={"X-Tenant-ID": "nope"})
    assert bad.status_code == 400
