"""The schema's migration state, for readiness checks."""

from __future__ import annotations

import asyncpg

from cards_api.db.types import Connection


async def current_revision(conn: Connection) -> str | None:
    try:
        value = await conn.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.exceptions.UndefinedTableError:
        return None
    return str(value) if value is not None else None
