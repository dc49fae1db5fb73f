"""What an API process needs to rank a tenant's cards itself (`search/index.py`), and the
statements that keep such a copy honest.

Every change that can alter a ranking (a card written, changed in a searched field, archived,
deleted; an embedding stored) stamps the tenant's row in `search_generations` with a new number
from one sequence (revision 0009's triggers), inside the changing transaction. A copy loaded at
generation g answers for exactly the data of g: the statement fetching the ranked cards reads
the generation in its own snapshot and returns nothing when it has moved on.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from cards_api.db.types import Connection

GENERATION = "(SELECT generation FROM search_generations WHERE tenant_id = $1)"

# In id order, so that an index's row number orders ties as `ORDER BY …, id` does in SQL. Term
# frequencies are the positions of each lexeme (`cardinality(positions)`), in the tsvector's own
# order, which `tsvector_to_array` shares; `dl` is `length(search)`, as the BM25 statement has.
LOAD = """
SELECT c.id, c.version, c.card_type, c.title, c.content, c.tags, length(c.search) AS dl,
       tsvector_to_array(c.search) AS lexemes,
       ARRAY(SELECT cardinality(u.positions) FROM unnest(c.search) AS u) AS tfs,
       e.version AS embedded_version, e.embedding
FROM cards c
LEFT JOIN card_embeddings e ON e.tenant_id = c.tenant_id AND e.card_id = c.id AND e.embedder = $2
WHERE c.tenant_id = $1 AND c.archived_at IS NULL
ORDER BY c.id
"""


async def generation(conn: Connection, *, tenant_id: UUID) -> int | None:
    """The tenant's generation; None when nothing has stamped it yet."""
    value: int | None = await conn.fetchval(f"SELECT {GENERATION}", tenant_id)
    return value


async def live_cards(conn: Connection, *, tenant_id: UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM cards WHERE tenant_id = $1 AND archived_at IS NULL", tenant_id
    )
    return count


async def load(conn: Connection, *, tenant_id: UUID, embedder: str) -> list[asyncpg.Record]:
    """The tenant's live cards as search sees them (run in the snapshot that read the
    generation)."""
    return await conn.fetch(LOAD, tenant_id, embedder)


# The ranked cards of a search, through revision 0010's functions: each binds the tenant itself,
# so a search ranked in the API is one statement with no transaction block around it. The
# generation is read in the statement's own snapshot; `cards_ranked` returns nothing when it has
# moved on. A context's candidates are not fetched: their prompt's columns come from the index
# once `current` has confirmed its generation (`SearchIndexes.fetch`).
FETCH = "SELECT * FROM cards_ranked($1, $2, $3, $4)"
STILL = "SELECT cards_search_current($1, $2)"


async def current(conn: Connection, *, tenant_id: UUID, generation: int | None) -> bool:
    """Whether the tenant's generation is still `generation`, in the statement's snapshot."""
    still: bool = await conn.fetchval(STILL, tenant_id, generation)
    return still


async def fetch_ranked(
    conn: Connection,
    *,
    tenant_id: UUID,
    ids: Sequence[UUID],
    scores: Sequence[float],
    generation: int | None,
) -> list[asyncpg.Record] | None:
    """The ranked cards with their scores, in rank order, as the ranking statements return them;
    None when the tenant's generation is no longer `generation` (the ranking may be stale)."""
    if not ids:
        return [] if await current(conn, tenant_id=tenant_id, generation=generation) else None
    rows = await conn.fetch(FETCH, tenant_id, ids, scores, generation)
    # At the same generation every ranked card is live: fewer rows means it moved on.
    return rows if len(rows) == len(ids) else None


LEXEMES = """
SELECT word, tsvector_to_array(to_tsvector('english', word)) AS lexemes
FROM unnest($1::text[]) AS word
"""


async def lexemes(conn: Connection, words: Sequence[str]) -> dict[str, list[str]]:
    """Each word's lexemes under the `english` configuration the cards are indexed with (none
    for a stop word, several for a word the parser splits)."""
    rows = await conn.fetch(LEXEMES, list(words))
    return {row["word"]: list(row["lexemes"]) for row in rows}
