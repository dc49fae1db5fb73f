"""Ranking a tenant's live cards against a query: full text, by meaning, and both fused.

Filters (`card_ids`, `card_types`, `tags`) apply before ranking, and the vector search is exact
over the filtered cards (no approximate index), so a filtered query never comes back short. Only
embeddings of a card's current version count: a card changed since it was embedded is found by
text until it is embedded again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from cards_api.db.queries.cards import CARD_COLUMNS, card_filters, live_cards_where
from cards_api.db.types import Connection

COLUMNS = ", ".join(f"cards.{column}" for column in CARD_COLUMNS.split(", "))
# Full-text rank: ts_rank_cd over title (A) and content (B), divided by 1 + log(length) (flag
# 1) so that long cards do not win on length alone. Chosen on the public Cranfield half
# (docs/search.md).
TEXT_RANK = "ts_rank_cd(cards.search, q, 1)"
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)


def _vector(values: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


@functools.cache
def text_sql(*, ids: bool, card_types: bool, tags: bool) -> str:
    """$1 tenant, filters, then the tsquery text, then the limit."""
    where, n = live_cards_where(
        card_filters(ids=ids, card_types=card_types, tags=tags), table="cards."
    )
    return (
        f"SELECT {COLUMNS}, {TEXT_RANK} AS score "
        f"FROM cards, to_tsquery('english', ${n + 1}) AS q "
        f"WHERE {where} AND cards.search @@ q "
        f"ORDER BY score DESC, cards.created_at, cards.id LIMIT ${n + 2}"
    )


@functools.cache
def _semantic_sql(*, ids: bool, card_types: bool, tags: bool) -> str:
    """$1 tenant, filters, then the query vector, the embedder, the tsquery text, the limit.

    The tsquery only gates: a query whose words are all stop words means nothing to rank by.
    """
    where, n = live_cards_where(
        card_filters(ids=ids, card_types=card_types, tags=tags), table="cards."
    )
    return (
        f"SELECT {COLUMNS}, 1 - (e.embedding <=> ${n + 1}::vector) AS score "
        "FROM cards JOIN card_embeddings e ON e.tenant_id = cards.tenant_id "
        f"AND e.card_id = cards.id AND e.embedder = ${n + 2} AND e.version = cards.version "
        f"WHERE {where} AND numnode(to_tsquery('english', ${n + 3})) > 0 "
        f"ORDER BY e.embedding <=> ${n + 1}::vector, cards.id LIMIT ${n + 4}"
    )


@functools.cache
def _hybrid_sql(*, ids: bool, card_types: bool, tags: bool) -> str:
    """$1 tenant, filters, then the tsquery text, the query vector, the embedder, the number of
    candidates each ranking contributes, the limit."""
    where, n = live_cards_where(
        card_filters(ids=ids, card_types=card_types, tags=tags), table="cards."
    )
    tsq, vec, embedder, depth, limit = (f"${n + k}" for k in range(1, 6))
    return f"""
        WITH lexical AS (
            SELECT cards.id, row_number() OVER (ORDER BY {TEXT_RANK} DESC, cards.id) AS r
            FROM cards, to_tsquery('english', {tsq}) AS q
            WHERE {where} AND cards.search @@ q
            ORDER BY r LIMIT {depth}
        ), semantic AS (
            SELECT cards.id,
                   row_number() OVER (ORDER BY e.embedding <=> {vec}::vector, cards.id) AS r
            FROM cards JOIN card_embeddings e ON e.tenant_id = cards.tenant_id
             AND e.card_id = cards.id AND e.embedder = {embedder} AND e.version = cards.version
            WHERE {where} AND numnode(to_tsquery('english', {tsq})) > 0
            ORDER BY r LIMIT {depth}
        ), fused AS (
            SELECT id, sum(1.0 / ({RRF_K} + r))::float8 AS score
            FROM (SELECT id, r FROM lexical UNION ALL SELECT id, r FROM semantic) ranked
            GROUP BY id
        )
        SELECT {COLUMNS}, fused.score FROM fused
        JOIN cards ON cards.tenant_id = $1 AND cards.id = fused.id
        ORDER BY fused.score DESC, cards.id LIMIT {limit}
    """


@dataclass(frozen=True, slots=True)
class Filters:
    """Retrieve's filters, applied before ranking."""

    ids: Sequence[UUID] | None = None
    card_types: Sequence[str] | None = None
    tags: Sequence[str] | None = None

    def shape(self) -> dict[str, bool]:
        """Which filters are present: selects the statement."""
        return {
            "ids": self.ids is not None,
            "card_types": self.card_types is not None,
            "tags": self.tags is not None,
        }

    def args(self) -> list[object]:
        return [v for v in (self.ids, self.card_types, self.tags) if v is not None]


async def rank_text(
    conn: Connection,
    *,
    tenant_id: UUID,
    tsquery: str,
    filters: Filters,
    limit: int,
) -> list[asyncpg.Record]:
    sql = text_sql(**filters.shape())
    return await conn.fetch(sql, tenant_id, *filters.args(), tsquery, limit)


async def rank_semantic(
    conn: Connection,
    *,
    tenant_id: UUID,
    tsquery: str,
    vector: Sequence[float],
    embedder: str,
    filters: Filters,
    limit: int,
) -> list[asyncpg.Record]:
    sql = _semantic_sql(**filters.shape())
    args = [tenant_id, *filters.args(), _vector(vector), embedder, tsquery, limit]
    return await conn.fetch(sql, *args)


async def rank_hybrid(
    conn: Connection,
    *,
    tenant_id: UUID,
    tsquery: str | None,
    vector: Sequence[float],
    embedder: str,
    filters: Filters,
    depth: int,
    limit: int,
) -> list[asyncpg.Record]:
    sql = _hybrid_sql(**filters.shape())
    args = [
        tenant_id,
        *filters.args(),
        tsquery,
        _vector(vector),
        embedder,
        depth,
        limit,
    ]
    return await conn.fetch(sql, *args)


# --- embeddings ---------------------------------------------------------------------------

UPSERT_EMBEDDINGS = """
INSERT INTO card_embeddings AS e (tenant_id, card_id, embedder, version, embedding)
SELECT $1, x.card_id, $2, x.version, x.embedding::vector
FROM unnest($3::uuid[], $4::integer[], $5::text[]) AS x(card_id, version, embedding)
JOIN cards c ON c.tenant_id = $1 AND c.id = x.card_id AND c.version = x.version
ON CONFLICT (tenant_id, card_id, embedder) DO UPDATE
SET version = EXCLUDED.version, embedding = EXCLUDED.embedding, created_at = now()
WHERE e.version <= EXCLUDED.version
"""


async def store_embeddings(
    conn: Connection,
    *,
    tenant_id: UUID,
    embedder: str,
    cards: Sequence[tuple[UUID, int, Sequence[float]]],
) -> None:
    """Store (card, version, vector) triples; a vector of a version the card has already left
    behind is dropped, so a slow embedding can never overwrite a newer one."""
    if not cards:
        return
    await conn.execute(
        UPSERT_EMBEDDINGS,
        tenant_id,
        embedder,
        [card_id for card_id, _, _ in cards],
        [version for _, version, _ in cards],
        [_vector(vector) for _, _, vector in cards],
    )


PENDING = """
SELECT c.id, c.version, c.title, c.tags, c.content
FROM cards c
LEFT JOIN card_embeddings e
  ON e.tenant_id = c.tenant_id AND e.card_id = c.id AND e.embedder = $2
WHERE c.tenant_id = $1 AND c.archived_at IS NULL AND e.version IS DISTINCT FROM c.version
ORDER BY c.id
LIMIT $3
"""


async def pending_cards(
    conn: Connection, *, tenant_id: UUID, embedder: str, limit: int
) -> list[asyncpg.Record]:
    """Live cards of the tenant whose current version has no embedding under `embedder`."""
    return await conn.fetch(PENDING, tenant_id, embedder, limit)


async def count_pending(conn: Connection, *, tenant_id: UUID, embedder: str) -> int:
    count = await conn.fetchval(
        """
        SELECT count(*) FROM cards c
        LEFT JOIN card_embeddings e
          ON e.tenant_id = c.tenant_id AND e.card_id = c.id AND e.embedder = $2
        WHERE c.tenant_id = $1 AND c.archived_at IS NULL AND e.version IS DISTINCT FROM c.version
        """,
        tenant_id,
        embedder,
    )
    return int(count or 0)


async def tenants_with_pending(conn: Connection, *, embedder: str) -> list[UUID]:
    """Tenants that have cards to embed (ids only; a function granted to the app role)."""
    rows = await conn.fetch("SELECT cards_tenants_with_pending_embeddings($1) AS id", embedder)
    return [row["id"] for row in rows]
