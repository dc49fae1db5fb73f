"""A card's version history (`card_versions`, written by a trigger on `cards`)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from cards_api.db.types import Connection


async def versions_page(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_id: UUID,
    before_version: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT version, title, content, tags, created_at FROM card_versions
        WHERE tenant_id = $1 AND card_id = $2 AND ($3::integer IS NULL OR version < $3)
        ORDER BY version DESC
        LIMIT $4
        """,
        tenant_id,
        card_id,
        before_version,
        limit,
    )
