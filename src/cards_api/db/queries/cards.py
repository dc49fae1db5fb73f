"""Cards and their version history.

Archived cards (`archived_at` set) are invisible to every read here except the version history
of a card that is still live; they are kept for usage history and audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from cards_api.db.types import Connection

CARD_COLUMNS = (
    "id, tenant_id, card_type, title, content, tags, external_ref, version, usage_count, "
    "last_used_at, created_at, updated_at"
)

# One round trip for the whole batch: the cards travel as one JSON array and PostgreSQL turns
# it into rows. Rows are inserted in (card_type, external_ref) order so that two batches
# upserting the same cards lock them in the same order and cannot deadlock. `xmax = 0` is true
# for a freshly inserted row and false for one the upsert updated.
UPSERT_BATCH = f"""
INSERT INTO cards AS c (tenant_id, id, card_type, title, content, tags, external_ref)
SELECT $1, x.id, x.card_type, x.title, x.content, x.tags, x.external_ref
FROM jsonb_to_recordset($2::jsonb) AS x(
    id uuid, card_type text, title text, content jsonb, tags text[], external_ref text
)
ORDER BY x.card_type, x.external_ref NULLS LAST
ON CONFLICT (tenant_id, card_type, external_ref) DO UPDATE
SET title = EXCLUDED.title,
    content = EXCLUDED.content,
    tags = EXCLUDED.tags,
    version = c.version + 1,
    archived_at = NULL,
    updated_at = now()
RETURNING {CARD_COLUMNS}, (xmax = 0) AS inserted
"""


async def upsert_batch(
    conn: Connection, *, tenant_id: UUID, cards_json: str
) -> list[asyncpg.Record]:
    return await conn.fetch(UPSERT_BATCH, tenant_id, cards_json)


async def find_cards(
    conn: Connection,
    *,
    tenant_id: UUID,
    ids: Sequence[UUID] | None = None,
    card_types: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    query: str | None = None,
    limit: int,
) -> list[asyncpg.Record]:
    """Live cards matching every given filter; ranked by relevance when `query` is given."""
    args: list[object] = [tenant_id]
    where = ["tenant_id = $1", "archived_at IS NULL"]
    if ids is not None:
        args.append(list(ids))
        where.append(f"id = ANY(${len(args)}::uuid[])")
    if card_types is not None:
        args.append(list(card_types))
        where.append(f"card_type = ANY(${len(args)}::text[])")
    if tags is not None:
        args.append(list(tags))
        where.append(f"tags && ${len(args)}::text[]")
    order = "created_at, id"
    if query is not None:
        args.append(query)
        tsquery = f"websearch_to_tsquery('english', ${len(args)})"
        where.append(f"search @@ {tsquery}")
        order = f"ts_rank_cd(search, {tsquery}) DESC, created_at, id"
    args.append(limit)
    sql = (
        f"SELECT {CARD_COLUMNS} FROM cards WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT ${len(args)}"
    )
    return await conn.fetch(sql, *args)


async def list_page(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_type: str | None,
    tag: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """One page in creation order (keyset pagination: stable while cards are added)."""
    args: list[object] = [tenant_id]
    where = ["tenant_id = $1", "archived_at IS NULL"]
    if card_type is not None:
        args.append(card_type)
        where.append(f"card_type = ${len(args)}")
    if tag is not None:
        args.append([tag])
        where.append(f"tags @> ${len(args)}::text[]")
    if after is not None:
        args.extend(after)
        where.append(f"(created_at, id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    sql = (
        f"SELECT {CARD_COLUMNS} FROM cards WHERE {' AND '.join(where)} "
        f"ORDER BY created_at, id LIMIT ${len(args)}"
    )
    return await conn.fetch(sql, *args)


async def get_card(conn: Connection, *, tenant_id: UUID, card_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {CARD_COLUMNS} FROM cards "
        "WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL",
        tenant_id,
        card_id,
    )


async def card_exists(conn: Connection, *, tenant_id: UUID, card_id: UUID) -> bool:
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM cards "
        "WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL)",
        tenant_id,
        card_id,
    )
    return bool(found)


async def update_card(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_id: UUID,
    title: str | None,
    content_json: str | None,
    tags: list[str] | None,
    expected_versions: list[int] | None,
) -> asyncpg.Record | None:
    """Change the given fields and bump the version; None when absent or no version matches."""
    return await conn.fetchrow(
        f"""
        UPDATE cards
        SET title = coalesce($3, title),
            content = coalesce($4::jsonb, content),
            tags = coalesce($5::text[], tags),
            version = version + 1,
            updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL
          AND ($6::integer[] IS NULL OR version = ANY($6))
        RETURNING {CARD_COLUMNS}
        """,
        tenant_id,
        card_id,
        title,
        content_json,
        tags,
        expected_versions,
    )


async def archive_card(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_id: UUID,
    expected_versions: list[int] | None,
) -> bool:
    archived = await conn.fetchval(
        """
        UPDATE cards SET archived_at = now(), updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL
          AND ($3::integer[] IS NULL OR version = ANY($3))
        RETURNING true
        """,
        tenant_id,
        card_id,
        expected_versions,
    )
    return bool(archived)


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
