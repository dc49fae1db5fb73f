"""Alembic environment: plain-SQL migrations run over asyncpg, one transaction, one at a time.

The whole upgrade runs in a single transaction that first takes an advisory lock, so several
processes starting at once (workers, hosts, a CLI beside a server) migrate exactly once and
never see a half-applied schema.
"""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

# An arbitrary constant naming "the Cards API schema migration" among advisory locks.
MIGRATION_LOCK_ID = 7_245_001_301


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
        context.run_migrations()
        role = context.config.attributes["roles"].app
        for name, value in context.config.attributes.get("role_settings", {}).items():
            # Session defaults of the app role (timeouts): they hold behind a pooler too.
            literal = "'" + str(value).replace("'", "''") + "'"
            connection.execute(text(f"ALTER ROLE {role} SET {name} = {literal}"))
        password = context.config.attributes.get("app_password")
        if password is not None:
            # On every migrate, so that changing CARDS_DATABASE_APP_PASSWORD takes effect.
            literal = "'" + password.replace("'", "''") + "'"
            connection.execute(text(f"ALTER ROLE {role} LOGIN PASSWORD {literal}"))


async def _main(dsn: str) -> None:
    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(dsn)

    engine = create_async_engine("postgresql+asyncpg://", async_creator=connect, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():  # pragma: no cover - offline SQL generation is not offered
    raise SystemExit("offline migrations are not supported; run `cards-api migrate`")
asyncio.run(_main(context.config.attributes["dsn"]))
