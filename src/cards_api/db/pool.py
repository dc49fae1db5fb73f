"""The asyncpg connection pool of one API process.

The pool logs in as the deployment's app role (`cards_api.db.roles`): a role that owns no
table, is bound by row-level security, and cannot become anything else, so no statement on a
pooled connection (not `RESET ROLE`, not `set_config('role', …)`) reaches the owner's rights.
The tenant is set per transaction with `set_config(…, true)`, which PostgreSQL clears at commit
or rollback; that is why the pool's default reset round trip on release is not needed and is
skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

import asyncpg
from pgvector.asyncpg import register_vector

from cards_api.db.roles import login_url
from cards_api.settings import Pooler, Settings

LISTENER_APPLICATION_NAME = "cards-api-listener"
LEASES_APPLICATION_NAME = "cards-api-embedding-leases"


def server_settings(
    settings: Settings,
    *,
    role: str | None = None,
    application_name: str = "cards-api",
    pooler: bool = False,
) -> dict[str, str]:
    if pooler:  # a pooler accepts only the parameters it tracks
        return {"application_name": application_name, "TimeZone": "UTC"}
    values = {
        "application_name": application_name,
        "statement_timeout": str(settings.statement_timeout_ms),
        "lock_timeout": str(settings.lock_timeout_ms),
        "idle_in_transaction_session_timeout": str(settings.statement_timeout_ms * 2),
        "timezone": "UTC",
        "jit": "off",
    }
    if role is not None:
        values["role"] = role
    return values


async def _keep(_: asyncpg.Connection) -> None:
    """Release hook: transaction-local tenant settings need no session reset."""


def app_login_url(owner_dsn: str, settings: Settings) -> str:
    """Where the API logs in: the owner's URL with the app role (and its password) instead."""
    return login_url(owner_dsn, settings.roles(owner_dsn).app, settings.app_password())


POOL_MAX_QUERIES: Final = 10_000_000
"""Queries after which a pooled connection is replaced. asyncpg's default, 50,000, replaced each
connection every few minutes under load, and the request that next asked for it waited ~30 ms
for a new login: single slow seconds in the benchmark's timeline (docs/performance.md). Ten
million still renews a busy connection about daily."""


async def create_pool(
    owner_dsn: str,
    settings: Settings,
    *,
    init: Callable[[asyncpg.Connection], Coroutine[Any, Any, None]] | None = None,
) -> asyncpg.Pool:
    """The API's pool; `init` runs on each new connection after the vector codec is set (the
    tests use it to watch queries)."""

    async def setup(conn: asyncpg.Connection) -> None:
        # pgvector's own binary codec: a vector parameter goes as bytes packed in C, where
        # asyncpg's generic array encoder checked each of 256 floats in Python (~0.2 ms a search).
        await register_vector(conn)
        if init is not None:
            await init(conn)

    pooled = settings.db_pooler is Pooler.TRANSACTION
    pool = await asyncpg.create_pool(
        app_login_url(owner_dsn, settings),
        min_size=min(settings.pool_min_size, settings.pool_max_size),
        max_size=settings.pool_max_size,
        # Behind a transaction pooler: only what it passes on (the rest are the role's own
        # defaults, set by `migrate`), and no named prepared statements (it does not track them).
        server_settings=server_settings(settings, pooler=pooled),
        statement_cache_size=0 if pooled else 100,
        command_timeout=settings.statement_timeout_ms / 1000 + 5,
        reset=_keep,
        init=setup,
        max_queries=POOL_MAX_QUERIES,
    )
    assert pool is not None
    return pool


async def connect_session(
    owner_dsn: str, settings: Settings, *, application_name: str
) -> asyncpg.Connection:
    """A connection of its own that needs a session (LISTEN, session-level advisory locks): the
    app role, named apart in pg_stat_activity, direct to PostgreSQL when the pool goes through a
    transaction pooler, which cannot give a session."""
    return await asyncpg.connect(
        app_login_url(settings.database_direct_url or owner_dsn, settings),
        server_settings=server_settings(settings, application_name=application_name),
        command_timeout=settings.statement_timeout_ms / 1000 + 5,
    )


async def connect_listener(owner_dsn: str, settings: Settings) -> asyncpg.Connection:
    """The revocation listener's connection."""
    return await connect_session(owner_dsn, settings, application_name=LISTENER_APPLICATION_NAME)


async def connect_leases(owner_dsn: str, settings: Settings) -> asyncpg.Connection:
    """The embedding leases' connection (`search/leases.py`)."""
    return await connect_session(owner_dsn, settings, application_name=LEASES_APPLICATION_NAME)


async def connect(dsn: str, settings: Settings, *, role: str | None = None) -> asyncpg.Connection:
    """A single connection for CLI work, as `role` (None: the URL's user)."""
    return await asyncpg.connect(
        dsn,
        server_settings=server_settings(settings, role=role),
        command_timeout=settings.statement_timeout_ms / 1000 + 5,
    )
