"""Finding cards by a free-text query: full text, by meaning, or both fused.

The query is embedded before the request's transaction begins (`plan`), so no database
connection waits on the embedder. Ranking (`rank`) is done in the process from the tenant's
search index when one is loaded and current (`search/indexes.py`), and otherwise by one
statement computing the same ranking in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import structlog

from cards_api import metrics
from cards_api.db.queries import search as search_q
from cards_api.db.queries import tenancy as tenancy_q
from cards_api.db.queries.search import Filters
from cards_api.db.types import Connection, Row
from cards_api.domain.schemas import SearchMode
from cards_api.errors import ServiceUnavailable
from cards_api.search.embedder import Embedder, EmbedderUnavailable, Vector
from cards_api.search.index import Ranking
from cards_api.search.indexes import SearchIndexes
from cards_api.search.text import any_word_query, words

log = structlog.get_logger("cards_api.search")

HYBRID_DEPTH = 100
"""How many candidates each ranking contributes to the fusion (more than any `limit`)."""


def _depth(limit: int) -> int:
    """Each ranking's depth in a fusion: both ranking paths use this one."""
    return max(HYBRID_DEPTH, limit)


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
    indexes: SearchIndexes | None = None,
) -> Sequence[Row]:
    """Live cards matching the filters, best first, each with its `score` (higher is better);
    with `prompt`, only the columns a prompt is built from (`search_q.PROMPT_COLUMNS`).

    A query with no searchable word (say 40 "-") finds no card, whatever the mode: there is
    nothing in it to mean anything.
    """
    if plan.tsquery is None:
        return []
    if indexes is not None:
        rows = await _rank_in_process(
            conn, plan, indexes, tenant_id=tenant_id, filters=filters, limit=limit, prompt=prompt
        )
        metrics.record_search_ranked(in_process=rows is not None)
        if rows is not None:
            return rows
    await tenancy_q.ensure_bound(conn, tenant_id=tenant_id)
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
        depth=_depth(limit),
        limit=limit,
        filters=filters,
        prompt=prompt,
    )


async def _rank_in_process(
    conn: Connection,
    plan: Plan,
    indexes: SearchIndexes,
    *,
    tenant_id: UUID,
    filters: Filters,
    limit: int,
    prompt: bool,
) -> Sequence[Row] | None:
    """`rank` from the tenant's index; None when there is none current (or the query holds a
    word PostgreSQL would match as a phrase), and the SQL ranking answers instead."""
    index = indexes.current(tenant_id, plan.embedder)
    if index is None:
        return None
    lexemes = await indexes.lexemes(conn, plan.words.split())
    if lexemes is None:
        return None
    if not lexemes:  # only stop words: nothing to rank by in any mode, whatever the data
        return []
    mask = index.mask(filters)
    ranking: Ranking
    if plan.mode is SearchMode.TEXT or plan.vector is None:
        ranking = index.text(lexemes, mask, limit)
    elif plan.mode is SearchMode.SEMANTIC:
        ranking = index.semantic(plan.vector, mask, limit)
    else:
        ranking = index.hybrid(lexemes, plan.vector, mask, depth=_depth(limit), limit=limit)
    return await indexes.fetch(
        conn, index, ranking, tenant_id=tenant_id, embedder=plan.embedder, prompt=prompt
    )
