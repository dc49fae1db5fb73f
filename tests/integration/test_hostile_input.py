"""Input an attacker would send: every answer is a 4xx problem (or a 200 where the input is
valid), never a 500, and no such request counts as a 5xx. Also the documented order of checks,
and the bound on failed key look-ups per client address.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from cards_api import auth
from cards_api.settings import Settings
from tests.integration.test_metrics import scrape
from tests.support import Tenant, card, client_for, issue_tenant

SUMMARY = "/api/v1/usage/summary"
RETRIEVE = "/api/v1/cards/retrieve"


async def _server_errors(client: httpx.AsyncClient) -> float:
    samples = await scrape(client)
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "cards_api_requests_total" and dict(labels).get("status", "").startswith("5")
    )


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01T00:00:00+05:00"},
        {"until": "9999-12-31T23:59:59-05:00"},
        {"since": "0001-01-01T00:00:00+05:00", "until": "9999-12-31T23:59:59-05:00"},
    ],
)
async def test_instants_outside_utc_are_422_after_authentication(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str]
) -> None:
    before = await _server_errors(client)
    response = await client.get(SUMMARY, params=params, headers=tenant.headers())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "range" in response.json()["detail"]
    # Without a key the caller learns nothing about its parameters.
    assert (await client.get(SUMMARY, params=params)).status_code == 401
    assert await _server_errors(client) == before


async def test_the_extreme_instants_that_fit_are_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get(
        SUMMARY,
        params={"since": "0001-01-01T05:00:00+05:00", "until": "9999-12-31T18:59:59-05:00"},
        headers=tenant.headers(),
    )
    assert response.status_code == 200
    assert response.json()["since"] == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "query",
    ["-" * 40, "!" * 300, "(" * 200 + "a", "a <-> " * 80, "'" * 500, "&|!():*<>", "  "],
)
async def test_queries_the_full_text_parser_chokes_on_find_nothing(
    client: httpx.AsyncClient, tenant: Tenant, query: str
) -> None:
    await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card(title="a a a"), card(title="Plain text")]},
        headers=tenant.headers(),
    )
    before = await _server_errors(client)
    response = await client.post(RETRIEVE, json={"query": query}, headers=tenant.headers())
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert response.json()["cards"] == []  # no searchable word: no card
    assert await _server_errors(client) == before


async def test_words_among_operators_still_match(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card(title="Widget reliability")]},
        headers=tenant.headers(),
    )
    response = await client.post(
        RETRIEVE, json={"query": "((widget)) <-> !reliability'"}, headers=tenant.headers()
    )
    assert response.status_code == 200
    assert [c["title"] for c in response.json()["cards"]] == ["Widget reliability"]


@pytest.mark.parametrize("value", ["²", "١٢", 'W/"١٢"', '"³"', "1²"])
async def test_non_ascii_digits_in_if_match_are_400(
    client: httpx.AsyncClient, tenant: Tenant, value: str
) -> None:
    created = await client.post(
        "/api/v1/cards/batch", json={"cards": [card()]}, headers=tenant.headers()
    )
    card_id = created.json()["cards"][0]["id"]
    before = await _server_errors(client)
    # httpx sends header values as bytes; UTF-8 is what a hostile client would send.
    headers = [(k.encode(), v.encode()) for k, v in tenant.headers(**{"If-Match": value}).items()]
    patched = await client.patch(f"/api/v1/cards/{card_id}", json={"title": "New"}, headers=headers)
    deleted = await client.delete(f"/api/v1/cards/{card_id}", headers=headers)
    assert patched.status_code == deleted.status_code == 400
    assert "If-Match" in patched.json()["detail"]
    assert await _server_errors(client) == before
    still = await client.get(f"/api/v1/cards/{card_id}", headers=tenant.headers())
    assert still.json()["version"] == 1


# --- the documented order: 401 (key) → 400 (X-Tenant-ID) → 429 → 403 (tenant, scope) → 422 ---


async def test_an_invalid_key_without_a_tenant_header_is_401(
    client: httpx.AsyncClient, key_secret: bytes
) -> None:
    for key in ("nonsense", auth.generate_key(uuid.uuid4(), key_secret)):
        response = await client.get("/api/v1/cards", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401


async def test_an_invalid_key_with_a_malformed_tenant_header_is_401(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/api/v1/cards", headers={"Authorization": "Bearer x", "X-Tenant-ID": "not-a-uuid"}
    )
    assert response.status_code == 401


async def test_a_valid_key_without_a_tenant_header_is_400(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get("/api/v1/cards", headers={"Authorization": f"Bearer {tenant.key}"})
    assert response.status_code == 400


async def test_an_invalid_key_with_a_bad_body_is_401_not_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/cards/batch",
        json={"cards": "not a list"},
        headers={"Authorization": "Bearer x", "X-Tenant-ID": str(uuid.uuid4())},
    )
    assert response.status_code == 401


async def test_scope_is_checked_after_the_tenant(
    client: httpx.AsyncClient, other_tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    # A read-only key of one tenant, naming another tenant, writing: the tenant check wins.
    reader = await issue_tenant(owner_pool, {auth.Scope.CARDS_READ})
    response = await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card()]},
        headers=reader.headers(**{"X-Tenant-ID": str(other_tenant.id)}),
    )
    assert response.status_code == 403
    assert "X-Tenant-ID" in response.json()["detail"]
    own = await client.post(
        "/api/v1/cards/batch", json={"cards": [card()]}, headers=reader.headers()
    )
    assert own.status_code == 403
    assert "cards:write" in own.json()["detail"]


# --- failed look-ups per client address ------------------------------------------------------


@pytest.fixture
async def guarded_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    update = {"auth_failure_rate": 1.0, "auth_failure_burst": 5}
    async with client_for(settings.model_copy(update=update)) as http:
        yield http


async def test_an_address_that_keeps_failing_is_refused_before_any_look_up(
    guarded_client: httpx.AsyncClient, tenant: Tenant, key_secret: bytes
) -> None:
    # A key verified earlier (and so cached) is not held back by its address's failures.
    assert (await guarded_client.get("/api/v1/cards", headers=tenant.headers())).status_code == 200
    forged = {"Authorization": f"Bearer {auth.generate_key(tenant.id, key_secret)}"}
    forged["X-Tenant-ID"] = str(tenant.id)
    statuses = [
        (await guarded_client.get("/api/v1/cards", headers=forged)).status_code for _ in range(8)
    ]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    refused = await guarded_client.get("/api/v1/cards", headers=forged)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "failed key look-ups" in refused.json()["detail"]
    assert (await guarded_client.get("/api/v1/cards", headers=tenant.headers())).status_code == 200


async def test_the_summary_returns_the_largest_groups_and_says_when_it_cut(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card(title=f"Card {i}") for i in range(3)]},
        headers=tenant.headers(),
    )
    ids = [c["id"] for c in created.json()["cards"]]
    for index, card_id in enumerate(ids):
        for run in range(index + 1):  # card i gets i + 1 events
            await client.post(
                f"/api/v1/cards/{card_id}/usage",
                json={"workflow_id": f"run-{run}", "workflow_type": "newsletter"},
                headers=tenant.headers(),
            )
    params = {"group_by": "card", "limit": "2"}
    top = (await client.get(SUMMARY, params=params, headers=tenant.headers())).json()
    assert [g["key"] for g in top["groups"]] == [ids[2], ids[1]]
    assert top["truncated"] is True
    everything = (
        await client.get(SUMMARY, params={"group_by": "card"}, headers=tenant.headers())
    ).json()
    assert len(everything["groups"]) == 3
    assert everything["truncated"] is False
    too_many = await client.get(SUMMARY, params={"limit": "1001"}, headers=tenant.headers())
    assert too_many.status_code == 422


async def test_a_forged_key_is_refused_without_a_database_look_up(
    settings: Settings, tenant: Tenant, owner_pool: asyncpg.Pool, key_secret: bytes
) -> None:
    """With `api_keys` locked, any look-up waits for the lock and ends in a 503: the forged
    key's immediate 401 shows none was made. A legacy (untagged) key still is looked up."""
    tagged_elsewhere = auth.generate_key(tenant.id, b"some other deployment's secret!!")
    legacy_format = auth.generate_key(tenant.id, key_secret)[: auth.LEGACY_KEY_LENGTH]
    fast_lock_timeout = settings.model_copy(update={"lock_timeout_ms": 200})
    async with (
        client_for(fast_lock_timeout) as http,
        owner_pool.acquire() as blocker,
        blocker.transaction(),
    ):
        await blocker.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        for key, status in ((tagged_elsewhere, 401), (legacy_format, 503)):
            response = await http.get(
                "/api/v1/cards",
                headers={"Authorization": f"Bearer {key}", "X-Tenant-ID": str(tenant.id)},
            )
            assert response.status_code == status


async def test_a_malformed_path_or_query_is_checked_after_the_key(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    assert (await client.get("/api/v1/cards/not-a-uuid")).status_code == 401
    assert (await client.get("/api/v1/cards", params={"limit": "1000"})).status_code == 401
    authed = await client.get("/api/v1/cards/not-a-uuid", headers=tenant.headers())
    assert authed.status_code == 422
    assert (
        await client.get("/api/v1/cards", params={"limit": "1000"}, headers=tenant.headers())
    ).status_code == 422


async def test_keys_refused_without_a_look_up_never_count_against_the_address(
    guarded_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Malformed and forged keys cost nothing: a client testing its error handling with many of
    them keeps getting 401, not 429."""
    forged = auth.generate_key(tenant.id, b"another deployment's secret....")
    for key in ["nonsense", forged] * 20:
        headers = {"Authorization": f"Bearer {key}", "X-Tenant-ID": str(tenant.id)}
        assert (await guarded_client.get("/api/v1/cards", headers=headers)).status_code == 401
