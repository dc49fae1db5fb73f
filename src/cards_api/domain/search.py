"""Finding cards by a free-text query: full text, by meaning, or both fused.

The query is embedded before the request's transaction begins (`plan`), so no database
connection waits on the embedder; ranking (`rank`) is then one statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg
import structlog

from cards_api.db.queries import search as search_q
from cards_api.db.queries.search import Filters
from cards_api.db.types import Connection
from cards_api.domain.schemas import SearchMode
from cards_api.errors import ServiceUnavailable
from cards_api.search.embedder import Embedder, EmbedderUnavailable, Vector
from cards_api.search.text import any_word_query, words

log = structlog.get_logger("cards_api.search")

HYBRID_DEPTH = 100
"""How many candidates each ranking contributes to the fusion (more than any `limit`)."""


@dataclass(frozen=True, slots=True)
class Plan:
    mode: SearchMode
    tsquery: str | None
    """Any of the query's words, for `to_tsquery`; None when it has no searchable word."""
    words: str
    """The query's words, space-separated (their lexemes weigh the BM25 score)."""
    vector: Vector | None
    embedder: str


async def plan(embedder: Embedder, query: str, mode: SearchMode) -> Plan:
    """Prepare a query: its words, and its embedding unless the mode is `text`.

    Hybrid search falls back to text alone when the embedder cannot answer (the cards are still
    found by their words); semantic search cannot, and answers 503.
    """
    tsquery = any_word_query(query)
    found = " ".join(words(query))
    vector = None
    if mode is not SearchMode.TEXT:
        try:
            (vector,) = await embedder.embed([query])
        except EmbedderUnavailable as exc:
            if mode is SearchMode.SEMANTIC:
                raise ServiceUnavailable("the embedder is unavailable; retry shortly") from exc
            log.warning("query_embedding_failed", error=str(exc), fallback="text")
            mode = SearchMode.TEXT
    return Plan(mode=mode, tsquery=tsquery, words=found, vector=vector, embedder=embedder.name)


async def rank(
    conn: Connection,
    plan: Plan,
    *,
    tenant_id: UUID,
    filters: Filters,
    limit: int,
    prompt: bool = False,
) -> list[asyncpg.Record]:
    """Live cards matching the filters, best first, each with its `score` (higher is better);
    with `prompt`, only the columns a prompt is built from (`search_q.PROMPT_COLUMNS`).

    A query with no searchable word (say 40 "-") finds no card, whatever the mode: there is
    nothing in it to mean anything.
    """
    if plan.tsquery is None:
        return []
    if plan.mode is SearchMode.TEXT or plan.vector is None:
        return await search_q.rank_text(
            conn,
            tenant_id=tenant_id,
            tsquery=plan.tsquery,
            words=plan.words,
            limit=limit,
            filters=filters,
            prompt=prompt,
        )
    if plan.mode is SearchMode.SEMANTIC:
        return await search_q.rank_semantic(
            conn,
            tenant_id=tenant_id,
            tsquery=plan.tsquery,
            vector=plan.vector,
            embedder=plan.embedder,
            limit=limit,
            filters=filters,
            prompt=prompt,
        )
    return await search_q.rank_hybrid(
        conn,
        tenant_id=tenant_id,
        tsquery=plan.tsquery,
        words=plan.words,
        vector=plan.vector,
        embedder=plan.embedder,
        depth=max(HYBRID_DEPTH, limit),
        limit=limit,
        filters=filters,
        prompt=prompt,
    )
