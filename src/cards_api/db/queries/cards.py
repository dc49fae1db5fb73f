"""Cards and their version history.

Archived cards (`archived_at` set) are invisible to every read here except the version history
of a card that is still live; they are kept for usage history and audit.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from cards_api.db.queries import embeddings as embeddings_q
from cards_api.db.types import Connection

# Advisory-lock namespace of "a tenant's card batches" (the second key is the tenant's hash).
BATCH_LOCK_CLASS = 72_450_002

CARD_COLUMNS = (
    "id, tenant_id, card_type, title, content, tags, external_ref, version, usage_count, "
    "last_used_at, created_at, updated_at"
)

# One round trip for the whole batch: the cards travel as one JSON array and PostgreSQL turns
# it into rows. Rows are inserted in (card_type, external_ref) order so that two batches
# upserting the same cards lock them in the same order and cannot deadlock. `xmax = 0` is true
# for a freshly inserted row and false for one the upsert updated.
#
# Creation order is commit order (docs/database.md, "Listing while cards are written"): the
# batch first takes its tenant's batch lock (held until COMMIT), and only then reads the clock
# for `created_at`. A batch still uncommitted holds the lock, so every batch that commits later
# stamps a later time, and a lister's cursor can never have passed a card that is not yet
# visible. `now()` (the transaction's start) would not do: a batch that began first and
# committed last would land behind cursors already handed out.
_UPSERT_CARDS = f"""
WITH locked AS MATERIALIZED (
    SELECT pg_advisory_xact_lock({BATCH_LOCK_CLASS}, hashtext($1::uuid::text))
),
stamp AS MATERIALIZED (
    SELECT clock_timestamp() AS at FROM locked
),
batch AS MATERIALIZED (
    SELECT * FROM ROWS FROM (jsonb_to_recordset($2::jsonb) AS (
        id uuid, card_type text, title text, content jsonb, tags text[], external_ref text
    )) WITH ORDINALITY AS x(id, card_type, title, content, tags, external_ref, n)
),
written AS (
    INSERT INTO cards AS c (
        tenant_id, id, card_type, title, content, tags, external_ref, created_at, updated_at
    )
    SELECT $1::uuid, x.id, x.card_type, x.title, x.content, x.tags, x.external_ref,
           stamp.at, stamp.at
    FROM stamp, batch x
    ORDER BY x.card_type, x.external_ref NULLS LAST
    ON CONFLICT (tenant_id, card_type, external_ref) DO UPDATE
    SET title = EXCLUDED.title,
        content = EXCLUDED.content,
        tags = EXCLUDED.tags,
        version = c.version + 1,
        archived_at = NULL,
        updated_at = EXCLUDED.updated_at
    RETURNING {CARD_COLUMNS}, (xmax = 0) AS inserted
),
ordered AS (
    SELECT w.*, x.n FROM written w
    JOIN batch x
      ON w.card_type = x.card_type AND (w.id = x.id OR w.external_ref = x.external_ref)
)"""
# `ordered`: each input's row with the input's position (`n`): found by the input's id when the
# card is new, by (card_type, external_ref) when it upserted an existing card.
_ORDERED_ROWS = f"\nSELECT {CARD_COLUMNS}, inserted FROM ordered ORDER BY n"
UPSERT_BATCH = _UPSERT_CARDS + _ORDERED_ROWS
# With the batch's vectors ($3 embedder, $4 vectors in request order), stored by the same
# statement: a round trip less than storing them after (~0.5 ms a batch; docs/performance.md).
UPSERT_BATCH_WITH_VECTORS = (
    f"{_UPSERT_CARDS},\n"
    + embeddings_q.batch_vectors(rows="ordered", embedder="$3", vectors="$4")
    + _ORDERED_ROWS
)


async def upsert_batch(
    conn: Connection,
    *,
    tenant_id: UUID,
    cards_json: str,
    vectors: tuple[str, Sequence[list[float]]] | None = None,
) -> list[asyncpg.Record]:
    """Write the batch, its rows in request order; with `vectors` (the embedder's name, a vector
    per card in request order) store them with it."""
    if vectors is None:
        return await conn.fetch(UPSERT_BATCH, tenant_id, cards_json)
    embedder, values = vectors
    return await conn.fetch(
        UPSERT_BATCH_WITH_VECTORS,
        tenant_id,
        cards_json,
        embedder,
        embeddings_q.vector_array(values),
    )


def live_cards_where(
    filters: Sequence[tuple[bool, str, int]], *, table: str = ""
) -> tuple[str, int]:
    """The WHERE clause over a tenant's live cards, plus each present filter's condition.

    `filters` are (present, condition template, number of parameters); parameters are numbered
    after the tenant's `$1`, in order, and `{t}` in a template stands for `table` (a prefix such
    as `cards.` where the statement joins). Returns the clause and the last parameter's number.
    """
    where = [f"{table}tenant_id = $1", f"{table}archived_at IS NULL"]
    n = 1
    for present, condition, count in filters:
        if present:
            params = (f"${n + k}" for k in range(1, count + 1))
            where.append(condition.format(*params, t=table))
            n += count
    return " AND ".join(where), n


def card_filters(*, ids: bool, card_types: bool, tags: bool) -> list[tuple[bool, str, int]]:
    """Retrieve's filters: any of the ids, any of the types, any of the tags."""
    return [
        (ids, "{t}id = ANY({0}::uuid[])", 1),
        (card_types, "{t}card_type = ANY({0}::text[])", 1),
        (tags, "{t}tags && {0}::text[]", 1),
    ]


@functools.cache
def find_cards_sql(*, card_types: bool, tags: bool) -> str:
    """The statement for a combination of filters, built once per combination; in creation
    order (a query ranks instead: `queries/search.py`; ids: `cards_by_ids`).

    Parameters in order: tenant, then card types and tags when present, then limit.
    """
    where, n = live_cards_where(card_filters(ids=False, card_types=card_types, tags=tags))
    return f"SELECT {CARD_COLUMNS} FROM cards WHERE {where} ORDER BY created_at, id LIMIT ${n + 1}"


async def find_cards(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_types: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    limit: int,
) -> list[asyncpg.Record]:
    """Live cards matching every given filter."""
    sql = find_cards_sql(card_types=card_types is not None, tags=tags is not None)
    args = [tenant_id, *(v for v in (card_types, tags) if v is not None), limit]
    return await conn.fetch(sql, *args)


# Revision 0010's function: binds the tenant itself, so a retrieve by ids is this one statement
# with no transaction block around it (`queries/tenancy.py`). Columns as CARD_COLUMNS.
BY_IDS = "SELECT * FROM cards_by_ids($1, $2, $3, $4)"


async def cards_by_ids(
    conn: Connection,
    *,
    tenant_id: UUID,
    ids: Sequence[UUID],
    card_types: Sequence[str] | None,
    tags: Sequence[str] | None,
) -> list[asyncpg.Record]:
    """Live cards among `ids` matching the other filters, in creation order; inside or outside a
    transaction bound to the same tenant."""
    return await conn.fetch(BY_IDS, tenant_id, ids, card_types, tags)


@functools.cache
def list_page_sql(*, card_type: bool, tag: bool, after: bool) -> str:
    """Parameters in order: tenant, then card type, tag and (created_at, id) when present, then
    limit."""
    where, n = live_cards_where(
        [
            (card_type, "card_type = {0}", 1),
            (tag, "tags @> ARRAY[{0}::text]", 1),
            (after, "(created_at, id) > ({0}, {1})", 2),
        ]
    )
    return f"SELECT {CARD_COLUMNS} FROM cards WHERE {where} ORDER BY created_at, id LIMIT ${n + 1}"


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
    sql = list_page_sql(
        card_type=card_type is not None, tag=tag is not None, after=after is not None
    )
    args: list[object] = [tenant_id]
    if card_type is not None:
        args.append(card_type)
    if tag is not None:
        args.append(tag)
    if after is not None:
        args.extend(after)
    args.append(limit)
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
