"""Fixtures shared by every test tier: one real PostgreSQL per run, migrated once.

With DATABASE_URL set the tests use that server; otherwise they start the embedded PostgreSQL
in a temporary folder. Every test works in fresh random tenants, the way real tenants are kept
apart, so tests never see each other's rows and need no cleanup.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from cards_api.db import migrate
from cards_api.db.embedded import start_embedded
from cards_api.db.queries.keys import key_tag_secret
from cards_api.settings import Settings
from tests.support import Tenant, issue_tenant


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        url = start_embedded(Path(tmp_path_factory.mktemp("embedded-pg"))).dsn
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # The rate limit has tests of its own; elsewhere bursts of test requests must not trip it.
    # So has the limit on failed authentications per client address (every in-process test
    # request comes from the same address). Test tenants are small: their searches are ranked
    # from the in-process index as a large tenant's would be (its size limits are tested apart).
    return Settings(
        database_url=database_url,
        log_level="WARNING",
        rate_limit=0,
        auth_failure_rate=0,
        search_index_min_cards=1,
    )


@pytest.fixture(scope="session")
async def owner_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Connections as the migrating (owner/superuser) user, to check what the database holds."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
async def key_secret(owner_pool: asyncpg.Pool) -> bytes:
    """The test deployment's key-tag secret, to make well-formed keys it never issued."""
    async with owner_pool.acquire() as conn:
        return await key_tag_secret(conn)


@pytest.fixture
async def tenant(owner_pool: asyncpg.Pool) -> Tenant:
    return await issue_tenant(owner_pool)


@pytest.fixture
async def other_tenant(owner_pool: asyncpg.Pool) -> Tenant:
    return await issue_tenant(owner_pool)
