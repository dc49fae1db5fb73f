"""Usage events and the per-card usage counter."""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg

from cards_api.db.types import Connection

# The seed's rules in one statement, hence one round trip. The UPDATE locks the card row first,
# so concurrent calls for one card queue there and each adds exactly one to `usage_count`; the
# INSERT then records the event unless this (card, workflow) pair already has one.
TRACK_USAGE = """
WITH card AS (
    UPDATE cards
    SET usage_count = usage_count + 1, last_used_at = now()
    WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL
    RETURNING tenant_id, id, card_type, usage_count, last_used_at
), event AS (
    INSERT INTO card_usage (tenant_id, card_id, card_type, workflow_id, workflow_type, session_id)
    SELECT tenant_id, id, card_type, $3, $4, $5 FROM card
    ON CONFLICT (tenant_id, card_id, workflow_id) DO NOTHING
    RETURNING 1
)
SELECT card.card_type, card.usage_count, card.last_used_at,
       EXISTS (SELECT FROM event) AS event_recorded
FROM card
"""


async def track_usage(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_id: UUID,
    workflow_id: str,
    workflow_type: str,
    session_id: str | None,
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        TRACK_USAGE, tenant_id, card_id, workflow_id, workflow_type, session_id
    )


# The same rules for several cards at once (a context's cards): every live card's count goes up,
# and each (card, workflow) pair gets its first event. Rows are updated in id order, the order
# every such statement takes, so that two of them on overlapping cards cannot deadlock.
TRACK_MANY = """
WITH card AS (
    UPDATE cards
    SET usage_count = usage_count + 1, last_used_at = now()
    WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND archived_at IS NULL
    RETURNING tenant_id, id, card_type
), event AS (
    INSERT INTO card_usage (tenant_id, card_id, card_type, workflow_id, workflow_type, session_id)
    SELECT tenant_id, id, card_type, $3, $4, $5 FROM card ORDER BY id
    ON CONFLICT (tenant_id, card_id, workflow_id) DO NOTHING
    RETURNING card_type
)
SELECT card_type FROM event
"""


async def track_many(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_ids: list[UUID],
    workflow_id: str,
    workflow_type: str,
    session_id: str | None,
) -> list[str]:
    """Count a use of each card; the card types of the events this recorded (new pairs only)."""
    if not card_ids:
        return []
    rows = await conn.fetch(
        TRACK_MANY, tenant_id, sorted(card_ids), workflow_id, workflow_type, session_id
    )
    return [row["card_type"] for row in rows]


async def events_page(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_id: UUID,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first, keyset-paginated on (created_at, id)."""
    before_at, before_id = before if before is not None else (None, None)
    return await conn.fetch(
        """
        SELECT id, workflow_id, workflow_type, session_id, created_at FROM card_usage
        WHERE tenant_id = $1 AND card_id = $2
          AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $5
        """,
        tenant_id,
        card_id,
        before_at,
        before_id,
        limit,
    )


SUMMARY_KEYS: Final = {
    "card_type": "card_type",
    "workflow_type": "workflow_type",
    "card": "card_id::text",
}


async def summary(
    conn: Connection,
    *,
    tenant_id: UUID,
    group_by: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[asyncpg.Record]:
    key = SUMMARY_KEYS[group_by]
    return await conn.fetch(
        f"""
        SELECT {key} AS key, count(*) AS events FROM card_usage
        WHERE tenant_id = $1
          AND ($2::timestamptz IS NULL OR created_at >= $2)
          AND ($3::timestamptz IS NULL OR created_at < $3)
        GROUP BY 1
        ORDER BY events DESC, key
        LIMIT $4
        """,
        tenant_id,
        since,
        until,
        limit,
    )
