"""A tenant's card embeddings: storing them, and which cards still wait for one.

A vector is stored with the card version it was computed from, and never replaces a vector of a
later version (`CONFLICT`): an embedding that arrives late, from the background worker or a
reindex, cannot undo a newer one. A card whose current version has no vector under the
configured embedder is pending: found by text until the worker embeds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg
from pgvector import Vector as PgVector

from cards_api.db.types import Connection

CONFLICT = """
ON CONFLICT (tenant_id, card_id, embedder) DO UPDATE
SET version = EXCLUDED.version, embedding = EXCLUDED.embedding, created_at = now()
WHERE e.version <= EXCLUDED.version"""

UPSERT_EMBEDDINGS = f"""
INSERT INTO card_embeddings AS e (tenant_id, card_id, embedder, version, embedding)
SELECT $1, x.card_id, $2, x.version, x.embedding
FROM unnest($3::uuid[], $4::integer[], $5::vector[]) AS x(card_id, version, embedding)
JOIN cards c ON c.tenant_id = $1 AND c.id = x.card_id AND c.version = x.version
{CONFLICT}
"""


def vector_array(vectors: Sequence[list[float]]) -> list[PgVector]:
    """A `vector[]` parameter: each vector wrapped for pgvector's codec (a list of lists would
    be sent as one 2-D array)."""
    return [PgVector(vector) for vector in vectors]


def batch_vectors(*, rows: str, embedder: str, vectors: str) -> str:
    """A CTE storing a batch's vectors with the cards the same statement writes, so a batch and
    its vectors are one round trip. `rows` are the written cards, each with its position in the
    request (`n`); `vectors` is a vector[] in request order."""
    return f"""stored_vectors AS (
    INSERT INTO card_embeddings AS e (tenant_id, card_id, embedder, version, embedding)
    SELECT r.tenant_id, r.id, {embedder}, r.version, v.embedding
    FROM {rows} r JOIN unnest({vectors}::vector[]) WITH ORDINALITY AS v(embedding, n) USING (n)
    {CONFLICT.strip()}
)"""


async def store_embeddings(
    conn: Connection,
    *,
    tenant_id: UUID,
    embedder: str,
    cards: Sequence[tuple[UUID, int, list[float]]],
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
        vector_array([vector for _, _, vector in cards]),
    )


# A tenant's live cards whose current version has no vector under the embedder ($2).
_PENDING_FROM = """
FROM cards c
LEFT JOIN card_embeddings e
  ON e.tenant_id = c.tenant_id AND e.card_id = c.id AND e.embedder = $2
WHERE c.tenant_id = $1 AND c.archived_at IS NULL AND e.version IS DISTINCT FROM c.version
"""
PENDING = (
    f"SELECT c.id, c.version, c.title, c.tags, c.content {_PENDING_FROM} ORDER BY c.id LIMIT $3"
)


async def pending_cards(
    conn: Connection, *, tenant_id: UUID, embedder: str, limit: int
) -> list[asyncpg.Record]:
    """Live cards of the tenant whose current version has no embedding under `embedder`."""
    return await conn.fetch(PENDING, tenant_id, embedder, limit)


async def count_pending(conn: Connection, *, tenant_id: UUID, embedder: str) -> int:
    count = await conn.fetchval(f"SELECT count(*) {_PENDING_FROM}", tenant_id, embedder)
    return int(count or 0)


async def tenants_with_pending(conn: Connection, *, embedder: str) -> list[UUID]:
    """Tenants that have cards to embed (ids only; a function granted to the app role)."""
    rows = await conn.fetch("SELECT cards_tenants_with_pending_embeddings($1) AS id", embedder)
    return [row["id"] for row in rows]


# A tenant's embedding lease (`search/leases.py`): a session-level advisory lock keyed by a
# namespace of ours and a hash of the tenant. Two tenants whose hashes collide share a lease,
# which only means one process embeds both.
LEASE_NAMESPACE = 0x43415244  # "CARD"
TRY_LEASE = "SELECT pg_try_advisory_lock($1::integer, hashtext($2::text))"
END_LEASE = "SELECT pg_advisory_unlock($1::integer, hashtext($2::text))"


async def try_lease(conn: Connection, *, tenant_id: UUID) -> bool:
    held = await conn.fetchval(TRY_LEASE, LEASE_NAMESPACE, str(tenant_id))
    return bool(held)


async def end_lease(conn: Connection, *, tenant_id: UUID) -> None:
    await conn.fetchval(END_LEASE, LEASE_NAMESPACE, str(tenant_id))
