"""No tenant sees another's data: a foreign card behaves exactly like a missing one through the
API, and the database itself (forced row-level security) returns and accepts no foreign row."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from cards_api import auth
from cards_api.db.queries.tenancy import SET_TENANT
from tests.support import Tenant, app_role, card, connect_as_app

TENANT_TABLES = [
    "cards",
    "card_versions",
    "card_usage",
    "idempotency_records",
    "api_keys",
    "card_embeddings",
    "contexts",
]

CARD_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/cards/{id}", None),
    ("PATCH", "/api/v1/cards/{id}", {"title": "hijacked"}),
    ("DELETE", "/api/v1/cards/{id}", None),
    ("GET", "/api/v1/cards/{id}/versions", None),
    ("POST", "/api/v1/cards/{id}/usage", {"workflow_id": "w", "workflow_type": "t"}),
    ("GET", "/api/v1/cards/{id}/usage", None),
]


async def _foreign_card(client: httpx.AsyncClient, owner: Tenant) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card(title="Secret plans", tags=["secret"], external_ref="ref")]},
        headers=owner.headers(),
    )
    created: dict[str, Any] = response.json()["cards"][0]
    await client.post(
        f"/api/v1/cards/{created['id']}/usage",
        json={"workflow_id": "owner-run", "workflow_type": "t"},
        headers=owner.headers(),
    )
    return created


def _shape(response: httpx.Response, card_id: str) -> tuple[int, str, str, str]:
    body = response.json()
    return (
        response.status_code,
        body["type"],
        body["title"],
        re.sub(re.escape(card_id), "<id>", body["detail"]),
    )


@pytest.mark.parametrize(
    ("method", "path", "body"), CARD_ROUTES, ids=[f"{m} {p}" for m, p, _ in CARD_ROUTES]
)
async def test_another_tenants_card_is_indistinguishable_from_a_missing_one(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    foreign = await _foreign_card(client, other_tenant)
    missing = str(uuid.uuid4())

    on_foreign = await client.request(
        method, path.format(id=foreign["id"]), json=body, headers=tenant.headers()
    )
    on_missing = await client.request(
        method, path.format(id=missing), json=body, headers=tenant.headers()
    )

    assert on_foreign.status_code == 404
    assert _shape(on_foreign, foreign["id"]) == _shape(on_missing, missing)
    # And the owner's card is untouched.
    mine = await client.get(f"/api/v1/cards/{foreign['id']}", headers=other_tenant.headers())
    assert mine.json()["title"] == "Secret plans"
    assert mine.json()["usage_count"] == 1


async def test_lists_searches_and_summaries_never_show_another_tenants_cards(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await _foreign_card(client, other_tenant)
    h = tenant.headers()
    assert (await client.get("/api/v1/cards", headers=h)).json()["cards"] == []
    assert (await client.get("/api/v1/cards", params={"tag": "secret"}, headers=h)).json()[
        "cards"
    ] == []
    for body in ({"query": "secret plans"}, {"tags": ["secret"]}, {"card_types": ["company"]}):
        assert (await client.post("/api/v1/cards/retrieve", json=body, headers=h)).json()[
            "cards"
        ] == []
    by_id = await client.post(
        "/api/v1/cards/retrieve", json={"card_ids": [foreign["id"]]}, headers=h
    )
    assert by_id.json() == {"cards": [], "missing_ids": [foreign["id"]]}
    summary = await client.get("/api/v1/usage/summary", params={"group_by": "card"}, headers=h)
    assert summary.json()["groups"] == []


async def test_the_same_external_ref_in_two_tenants_makes_two_cards(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await _foreign_card(client, other_tenant)
    mine = await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card(title="Mine", external_ref="ref")]},
        headers=tenant.headers(),
    )
    assert mine.json()["created"] == 1
    assert mine.json()["cards"][0]["id"] != foreign["id"]
    theirs = await client.get(f"/api/v1/cards/{foreign['id']}", headers=other_tenant.headers())
    assert theirs.json()["title"] == "Secret plans"


async def _app_connection(database_url: str) -> asyncpg.Connection:
    return await connect_as_app(database_url)


async def test_the_app_role_with_no_tenant_set_sees_no_rows(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str, owner_pool: asyncpg.Pool
) -> None:
    await _foreign_card(client, tenant)
    await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card()]},
        headers=tenant.headers(**{"Idempotency-Key": "k"}),
    )
    await client.post(
        "/api/v1/context", json={"task": "acme", "token_budget": 100}, headers=tenant.headers()
    )
    async with owner_pool.acquire() as owner:
        for table in TENANT_TABLES:
            assert await owner.fetchval(f"SELECT count(*) FROM {table}") > 0, table

    conn = await _app_connection(database_url)
    try:
        assert await conn.fetchval("SELECT current_user") == app_role(database_url)
        for table in TENANT_TABLES:
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(tenant.id))
            tenants = await conn.fetch("SELECT DISTINCT tenant_id FROM cards")
        assert [r["tenant_id"] for r in tenants] == [tenant.id]
        # The setting was transaction-local: gone after commit.
        assert await conn.fetchval("SELECT count(*) FROM cards") == 0
    finally:
        await conn.close()


async def test_the_text_match_function_returns_only_the_bound_tenants_live_cards(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, database_url: str
) -> None:
    """`cards_text_matches` runs past row-level security (for the GIN index): it must keep
    isolation itself, and archived cards out."""

    async def create(owner: Tenant) -> str:
        response = await client.post(
            "/api/v1/cards/batch",
            json={"cards": [card(content={"text": "quokka habitat"})]},
            headers=owner.headers(),
        )
        assert response.status_code == 201, response.text
        return str(response.json()["cards"][0]["id"])

    mine, archived, theirs = await create(tenant), await create(tenant), await create(other_tenant)
    gone = await client.delete(f"/api/v1/cards/{archived}", headers=tenant.headers())
    assert gone.status_code == 204
    match = "SELECT id FROM cards_text_matches(to_tsquery('english', 'quokka'))"
    conn = await _app_connection(database_url)
    try:
        assert await conn.fetch(match) == []  # bound to no tenant: nothing
        for bound, expected in ((tenant, mine), (other_tenant, theirs)):
            async with conn.transaction():
                await conn.execute(SET_TENANT, str(bound.id))
                assert [str(r["id"]) for r in await conn.fetch(match)] == [expected]
    finally:
        await conn.close()


async def test_the_self_binding_reads_return_only_their_tenants_live_cards_and_bind_nothing_after(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, database_url: str
) -> None:
    """Revision 0010's functions bind their statement to the tenant they are given (a retrieve
    by ids and a search's fetch are one statement, no transaction block): they must return that
    tenant's live cards only, leave the pooled connection bound to no one, and never rebind a
    transaction that belongs to another tenant."""

    async def create(owner: Tenant, title: str) -> uuid.UUID:
        response = await client.post(
            "/api/v1/cards/batch", json={"cards": [card(title=title)]}, headers=owner.headers()
        )
        assert response.status_code == 201, response.text
        return uuid.UUID(response.json()["cards"][0]["id"])

    mine, archived = await create(tenant, "Mine"), await create(tenant, "Archived")
    theirs = await create(other_tenant, "Theirs")
    gone = await client.delete(f"/api/v1/cards/{archived}", headers=tenant.headers())
    assert gone.status_code == 204
    everything = [mine, archived, theirs]
    conn = await _app_connection(database_url)
    try:
        by_ids = "SELECT * FROM cards_by_ids($1, $2, NULL, NULL)"
        rows = await conn.fetch(by_ids, tenant.id, everything)
        assert [row["id"] for row in rows] == [mine]
        current = await _generation(conn, tenant.id)
        assert current is not None
        ranked = "SELECT id, score FROM cards_ranked($1, $2, $3, $4)"
        rows = await conn.fetch(ranked, tenant.id, everything, [3.0, 2.0, 1.0], current)
        assert [(row["id"], row["score"]) for row in rows] == [(mine, 3.0)]
        # At any other generation the ranking may be stale: nothing, and not current.
        assert await conn.fetch(ranked, tenant.id, everything, [3.0, 2.0, 1.0], current - 1) == []
        still = "SELECT cards_search_current($1, $2)"
        assert await conn.fetchval(still, tenant.id, current) is True
        assert await conn.fetchval(still, tenant.id, current - 1) is False
        # Bound to no one once the statement is over: the policies see nothing.
        assert await conn.fetchval("SELECT cards_current_tenant()") is None
        assert await conn.fetchval("SELECT count(*) FROM cards") == 0
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(tenant.id))
            for call, args in (
                (by_ids, (other_tenant.id, [theirs])),
                ("SELECT cards_search_current($1, NULL)", (other_tenant.id,)),
            ):
                with pytest.raises(asyncpg.RaiseError, match="bound to another tenant"):
                    async with conn.transaction():  # a savepoint, so the outer one goes on
                        await conn.fetch(call, *args)
            # The same tenant is confirmed, not refused.
            assert len(await conn.fetch(by_ids, tenant.id, [mine])) == 1
        with pytest.raises(asyncpg.RaiseError, match="no tenant"):
            await conn.fetch("SELECT * FROM cards_by_ids(NULL, $1, NULL, NULL)", [mine])
    finally:
        await conn.close()


async def test_the_key_look_up_finds_only_its_own_tenants_active_key(
    tenant: Tenant, other_tenant: Tenant, database_url: str, owner_pool: asyncpg.Pool
) -> None:
    """Revision 0011's `cards_active_key` binds its statement to the tenant it is given: another
    tenant's key is not found under this tenant, a revoked key is not found at all, and the
    connection is bound to no one afterwards."""
    look_up = "SELECT scopes FROM cards_active_key($1, $2)"
    mine, theirs = auth.hash_key(tenant.key), auth.hash_key(other_tenant.key)
    conn = await _app_connection(database_url)
    try:
        assert len(await conn.fetch(look_up, tenant.id, mine)) == 1
        assert await conn.fetch(look_up, tenant.id, theirs) == []  # theirs, asked as mine
        assert len(await conn.fetch(look_up, other_tenant.id, theirs)) == 1
        assert await conn.fetchval("SELECT cards_current_tenant()") is None
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(tenant.id))
            with pytest.raises(asyncpg.RaiseError, match="bound to another tenant"):
                await conn.fetch(look_up, other_tenant.id, theirs)
        async with owner_pool.acquire() as owner:
            await owner.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1", tenant.id
            )
        assert await conn.fetch(look_up, tenant.id, mine) == []
    finally:
        await conn.close()


async def _generation(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int | None:
    async with conn.transaction():
        await conn.execute(SET_TENANT, str(tenant_id))
        value: int | None = await conn.fetchval(
            "SELECT generation FROM search_generations WHERE tenant_id = $1", tenant_id
        )
    return value


async def test_the_database_refuses_a_row_for_another_tenant(
    tenant: Tenant, other_tenant: Tenant, database_url: str
) -> None:
    conn = await _app_connection(database_url)
    insert = (
        "INSERT INTO cards (tenant_id, id, card_type, title, content) "
        "VALUES ($1, gen_random_uuid(), 'company', 't', '{}')"
    )
    try:
        async with conn.transaction():
            await conn.execute(SET_TENANT, str(tenant.id))
            with pytest.raises(
                asyncpg.exceptions.InsufficientPrivilegeError, match="row-level security"
            ):
                await conn.execute(insert, other_tenant.id)
    finally:
        await conn.close()


async def test_the_app_role_owns_nothing_and_cannot_bypass_rls(
    owner_pool: asyncpg.Pool, database_url: str
) -> None:
    APP_ROLE = app_role(database_url)
    async with owner_pool.acquire() as conn:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1", APP_ROLE
        )
        assert role is not None
        assert (role["rolsuper"], role["rolbypassrls"]) == (False, False)
        tables = await conn.fetch(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   pg_get_userbyid(c.relowner) AS owner
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])
            """,
            TENANT_TABLES,
        )
    assert len(tables) == len(TENANT_TABLES)
    for table in tables:
        assert table["relrowsecurity"], table["relname"]
        assert table["relforcerowsecurity"], table["relname"]
        assert table["owner"] != APP_ROLE


async def test_tenant_id_leads_every_key_and_index(owner_pool: asyncpg.Pool) -> None:
    async with owner_pool.acquire() as conn:
        constraints = await conn.fetch(
            """
            SELECT con.conname, con.contype, a.attname AS first_column
            FROM pg_constraint con
            JOIN pg_class c ON c.oid = con.conrelid
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = con.conkey[1]
            WHERE c.relname = ANY($1::text[]) AND con.contype IN ('p', 'u', 'f')
            """,
            TENANT_TABLES,
        )
        indexes = await conn.fetch(
            """
            SELECT i.relname, a.attname AS first_column
            FROM pg_index x
            JOIN pg_class c ON c.oid = x.indrelid
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = x.indkey[0]
            WHERE c.relname = ANY($1::text[])
            """,
            TENANT_TABLES,
        )
    assert len(constraints) >= 10
    assert len(indexes) >= 10
    for row in [*constraints, *indexes]:
        assert row["first_column"] == "tenant_id", dict(row)
