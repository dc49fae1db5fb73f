"""The asyncpg connection pool of one API process.

Connections switch to the `cards_app` role at connect time (a startup parameter, which even
`RESET ALL` keeps), so every query of the request path runs as a role that owns no table and
is bound by row-level security. The tenant is set per transaction with `set_config(…, true)`,
which PostgreSQL clears at commit or rollback; that is why the pool's default reset round trip
on release is not needed and is skipped.
"""

from __future__ import annotations

import asyncpg

from cards_api.settings import Settings

APP_ROLE = "cards_app"
ADMIN_ROLE = "cards_admin"
MAINTENANCE_ROLE = "cards_maintenance"


def server_settings(settings: Settings, *, role: str | None) -> dict[str, str]:
    values = {
        "application_name": "cards-api",
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


async def create_pool(dsn: str, settings: Settings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(settings.pool_min_size, settings.pool_max_size),
        max_size=settings.pool_max_size,
        server_settings=server_settings(settings, role=APP_ROLE),
        command_timeout=settings.statement_timeout_ms / 1000 + 5,
        reset=_keep,
    )
    assert pool is not None
    return pool


async def connect(dsn: str, settings: Settings, *, role: str | None) -> asyncpg.Connection:
    """A single connection for CLI and maintenance work, as `role` (None: the URL's user)."""
    return await asyncpg.connect(
        dsn,
        server_settings=server_settings(settings, role=role),
        command_timeout=settings.statement_timeout_ms / 1000 + 5,
    )
