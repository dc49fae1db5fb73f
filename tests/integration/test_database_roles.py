"""The API's database login cannot become the owner, purges work without it, and two
deployments on one PostgreSQL cluster cannot reach each other's data.

Each deployment here is the strict setup an operator would run: its own database, owned by a
role that is not a superuser (only CREATEROLE, to make the deployment's roles), migrated by the
service's own migrations, served by the service's own app.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from cards_api import auth, idempotency
from cards_api.db import migrate
from cards_api.db.pool import connect, create_pool
from cards_api.db.queries.tenancy import set_tenant
from cards_api.db.roles import Roles, login_url
from cards_api.settings import Settings
from tests.support import card, client_for


@dataclass(frozen=True)
class Deployment:
    name: str
    owner: str
    owner_dsn: str
    roles: Roles

    def settings(self, base: Settings) -> Settings:
        return base.model_copy(update={"database_url": self.owner_dsn})


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def _make_deployment(owner_pool: asyncpg.Pool, database_url: str) -> Deployment:
    suffix = uuid.uuid4().hex[:8]
    name, owner = f"deploy_{suffix}", f"owner_{suffix}"
    async with owner_pool.acquire() as conn:
        await conn.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE NOSUPERUSER")
        await conn.execute(f"CREATE DATABASE {name} OWNER {owner}")
    # pgvector is not a trusted extension: a superuser installs it, as on a managed database.
    superuser = await asyncpg.connect(_with_database(database_url, name))
    try:
        await superuser.execute("CREATE EXTENSION vector")
    finally:
        await superuser.close()
    owner_dsn = login_url(_with_database(database_url, name), owner, None)
    await asyncio.to_thread(migrate.upgrade, owner_dsn)  # it runs an event loop of its own
    return Deployment(name, owner, owner_dsn, Roles.for_database(owner_dsn))


@pytest.fixture(scope="module")
async def deployments(owner_pool: asyncpg.Pool, database_url: str) -> tuple[Deployment, Deployment]:
    return (
        await _make_deployment(owner_pool, database_url),
        await _make_deployment(owner_pool, database_url),
    )


async def _issue(deployment: Deployment, settings: Settings, tenant_id: uuid.UUID) -> str:
    conn = await connect(deployment.owner_dsn, settings, role=deployment.roles.admin)
    try:
        async with conn.transaction():
            issued = await auth.issue_key(
                conn, tenant_id=tenant_id, scopes=set(auth.ALL_SCOPES), name="t"
            )
    finally:
        await conn.close()
    return issued.key


@pytest.fixture
async def app_conn(deployments: tuple[Deployment, Deployment]) -> AsyncIterator[asyncpg.Connection]:
    deployment = deployments[0]
    conn = await asyncpg.connect(login_url(deployment.owner_dsn, deployment.roles.app, None))
    try:
        yield conn
    finally:
        await conn.close()


def test_each_deployment_names_its_own_roles(deployments: tuple[Deployment, Deployment]) -> None:
    first, second = deployments
    assert first.roles.app == f"cards_{first.name}_app"
    assert first.roles.app != second.roles.app
    assert first.roles.admin != second.roles.admin


async def test_the_app_login_is_neither_owner_nor_superuser_nor_a_member_of_anything(
    app_conn: asyncpg.Connection, deployments: tuple[Deployment, Deployment]
) -> None:
    deployment = deployments[0]
    row = await app_conn.fetchrow(
        """
        SELECT current_user AS me, r.rolsuper, r.rolbypassrls, r.rolcreaterole,
               (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) AS memberships
        FROM pg_roles r WHERE r.rolname = current_user
        """
    )
    assert row is not None
    assert row["me"] == deployment.roles.app
    assert (row["rolsuper"], row["rolbypassrls"], row["rolcreaterole"]) == (False, False, False)
    assert row["memberships"] == 0


@pytest.mark.parametrize(
    "escalation",
    [
        "SET ROLE {owner}",
        "SET ROLE postgres",
        "SET ROLE {admin}",
        "SET ROLE {maintenance}",
        "SET SESSION AUTHORIZATION {owner}",
        "SELECT set_config('role', '{owner}', false)",
        "SELECT set_config('role', '{admin}', true)",
    ],
)
async def test_the_app_login_cannot_switch_to_a_stronger_role(
    app_conn: asyncpg.Connection, deployments: tuple[Deployment, Deployment], escalation: str
) -> None:
    deployment = deployments[0]
    statement = escalation.format(
        owner=deployment.owner,
        admin=deployment.roles.admin,
        maintenance=deployment.roles.maintenance,
    )
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
        await app_conn.execute(statement)


async def test_resetting_the_role_leaves_the_app_role_seeing_no_rows(
    app_conn: asyncpg.Connection, deployments: tuple[Deployment, Deployment]
) -> None:
    deployment = deployments[0]
    tenant_id = uuid.uuid4()
    async with app_conn.transaction():
        await set_tenant(app_conn, tenant_id=tenant_id)
        await app_conn.execute(
            "INSERT INTO cards (tenant_id, id, card_type, title, content) "
            "VALUES ($1, gen_random_uuid(), 'company', 't', '{}')",
            tenant_id,
        )
    for statement in ("RESET ROLE", "SET ROLE NONE", "SELECT set_config('role', 'none', false)"):
        await app_conn.execute(statement)
        assert await app_conn.fetchval("SELECT current_user") == deployment.roles.app
        assert await app_conn.fetchval("SELECT count(*) FROM cards") == 0
        assert await app_conn.fetchval("SELECT count(*) FROM api_keys") == 0


async def test_expired_idempotency_records_are_purged_through_the_granted_function(
    deployments: tuple[Deployment, Deployment], settings: Settings
) -> None:
    deployment = deployments[0]
    pool = await create_pool(deployment.owner_dsn, deployment.settings(settings))
    tenant_id = uuid.uuid4()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await set_tenant(conn, tenant_id=tenant_id)
            for key, expires in (("old", -60), ("fresh", 3600)):
                await conn.execute(
                    "INSERT INTO idempotency_records (tenant_id, key, fingerprint, expires_at) "
                    "VALUES ($1, $2, '\\x00', $3)",
                    tenant_id,
                    key,
                    datetime.now(UTC) + timedelta(seconds=expires),
                )
        assert await idempotency.purge_expired(pool) == 1
        async with pool.acquire() as conn, conn.transaction():
            await set_tenant(conn, tenant_id=tenant_id)
            keys = await conn.fetch(
                "SELECT key FROM idempotency_records WHERE tenant_id = $1", tenant_id
            )
        assert [r["key"] for r in keys] == ["fresh"]
        # The function does its one job: the app role still cannot delete by itself.
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM idempotency_records")
    finally:
        await pool.close()


async def test_one_deployments_owner_cannot_reach_the_others_data(
    deployments: tuple[Deployment, Deployment],
) -> None:
    first, second = deployments
    crossing = await asyncpg.connect(_with_database(first.owner_dsn, second.name))
    try:
        for statement in (
            "SELECT count(*) FROM api_keys",
            "SELECT count(*) FROM cards",
            f"SET ROLE {second.roles.admin}",
            f"SET ROLE {second.roles.app}",
            "INSERT INTO api_keys (tenant_id, key_hash, key_hint, scopes) "
            "VALUES (gen_random_uuid(), '\\x00', 'x', '{cards:read}')",
        ):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await crossing.execute(statement)
    finally:
        await crossing.close()


async def test_two_deployments_serve_side_by_side_and_keys_do_not_cross(
    deployments: tuple[Deployment, Deployment], settings: Settings
) -> None:
    first, second = deployments
    tenant_id = uuid.uuid4()  # the same tenant id in both deployments
    key_first = await _issue(first, settings, tenant_id)
    key_second = await _issue(second, settings, tenant_id)

    def headers(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "X-Tenant-ID": str(tenant_id)}

    async with (
        client_for(first.settings(settings)) as api_first,
        client_for(second.settings(settings)) as api_second,
    ):
        created = await api_first.post(
            "/api/v1/cards/batch",
            json={"cards": [card(title="First only")]},
            headers=headers(key_first),
        )
        assert created.status_code == 201
        card_id = created.json()["cards"][0]["id"]
        # The first deployment's key means nothing to the second, and its card is not there.
        refused = await api_second.get("/api/v1/cards", headers=headers(key_first))
        assert refused.status_code == 401
        listed = await api_second.get("/api/v1/cards", headers=headers(key_second))
        assert listed.json()["cards"] == []
        missing = await api_second.get(f"/api/v1/cards/{card_id}", headers=headers(key_second))
        assert missing.status_code == 404


async def test_a_database_migrated_with_the_old_shared_roles_moves_off_them(
    owner_pool: asyncpg.Pool, database_url: str
) -> None:
    name = f"legacy_{uuid.uuid4().hex[:8]}"
    async with owner_pool.acquire() as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    dsn = _with_database(database_url, name)
    await asyncio.to_thread(migrate.upgrade, dsn, target="0002")
    legacy = await asyncpg.connect(dsn)
    try:  # what revision 0001 used to do: cluster-wide roles with fixed names
        for role in ("cards_app", "cards_admin", "cards_maintenance"):
            await legacy.execute(
                f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
        await legacy.execute("GRANT SELECT, INSERT, UPDATE ON cards TO cards_app")
        await legacy.execute("GRANT SELECT, INSERT, UPDATE ON api_keys TO cards_admin")
        await legacy.execute(
            "CREATE POLICY api_keys_admin ON api_keys TO cards_admin USING (true) WITH CHECK (true)"
        )
    finally:
        await legacy.close()
    await asyncio.to_thread(migrate.upgrade, dsn)
    check = await asyncpg.connect(dsn)
    try:
        for role, table in (("cards_app", "cards"), ("cards_admin", "api_keys")):
            assert not await check.fetchval(
                "SELECT has_table_privilege($1, $2, 'SELECT')", role, table
            )
        policy = await check.fetchval(
            "SELECT roles::text FROM pg_policies WHERE policyname = 'api_keys_admin'"
        )
        assert policy == "{" + Roles.for_database(dsn).admin + "}"
    finally:
        await check.close()
