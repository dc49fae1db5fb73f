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
PROMPT_FIELDS = ("id", "version", "card_type", "title", "content")
PROMPT_COLUMNS = ", ".join(f"cards.{column}" for column in PROMPT_FIELDS)
"""What a prompt is built from: a context ranks 100 candidates, and decoding every column of
each (timestamps, tags, usage) was ~0.2 ms of a context's CPU (docs/performance.md)."""


def _columns(prompt: bool) -> str:
    return PROMPT_COLUMNS if prompt else COLUMNS


# Full-text relevance is Okapi BM25 over the stemmed lexemes of the `search` tsvector (title and
# every string of the content, PostgreSQL's `english` configuration): a card matches when it
# holds any of the query's words, and rarer words weigh more. Term frequencies come from the
# tsvector's positions; document frequencies and the average length from the cards that match,
# within the filters. Constants and the choice over `ts_rank`: docs/search.md.
BM25_K1 = 1.2
BM25_B = 0.75
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)
FEEDBACK_CARDS = 8
"""Hybrid search moves the query's vector towards the mean of the best lexical matches'
(pseudo-relevance feedback) before the vector ranking: the two kinds of evidence help each
other."""
FEEDBACK_WEIGHT = 2.0


# Vectors travel in pgvector's binary format (its codec is set on every pool connection,
# `db/pool.py`): formatting 256 floats as pgvector's text was ~190 µs per vector, and asyncpg's
# generic float4[] encoder checked each element in Python. VEC types such a parameter.
VEC = "::vector"


def _filtered(*, ids: bool, card_types: bool, tags: bool) -> tuple[str, int, bool]:
    """The WHERE over the tenant's live cards with the present filters, its last parameter's
    number, and whether any filter is present (which picks the plans below)."""
    where, n = live_cards_where(
        card_filters(ids=ids, card_types=card_types, tags=tags), table="cards."
    )
    return where, n, ids or card_types or tags


def _bm25_ctes(where: str, tsq: str, words: str, *, filtered: bool) -> str:
    """CTEs ending in `bm25(id, score)`: every matching card of the filtered set, scored.

    Matches come from `cards_text_matches` (revision 0007): the live cards of the transaction's
    tenant found through the GIN index, which row-level security would otherwise keep `@@` from
    using. Filters, when there are any, are applied to those matches.

    Term frequencies (`hits`) come from each matching card's tsvector cut down to the query's
    terms in C (every weight set to D, the terms' to A, only A kept) before it is unnested:
    unnesting every lexeme of every match was half of a search's time (docs/performance.md).
    SQL comments are avoided in these statements: the benchmark runs them flattened to one line.
    """
    return f"""
        terms AS (
            SELECT DISTINCT lexeme
            FROM unnest(tsvector_to_array(to_tsvector('english', {words}))) AS lexeme
        ), matched AS (
            SELECT m.id, m.search FROM cards_text_matches(to_tsquery('english', {tsq})) m
            {f"JOIN cards ON cards.id = m.id WHERE {where}" if filtered else ""}
        ), stats AS (
            SELECT (SELECT count(*) FROM cards WHERE {where})::float8 AS n,
                   (SELECT avg(length(search)) FROM matched)::float8 AS avgdl
        ), hits AS (
            SELECT m.id, u.lexeme, cardinality(u.positions)::float8 AS tf,
                   length(m.search)::float8 AS dl
            FROM matched m,
                 unnest(ts_filter(setweight(setweight(m.search, 'D'), 'A',
                                            (SELECT array_agg(lexeme) FROM terms)), '{{a}}')) AS u
        ), df AS (
            SELECT lexeme, count(*)::float8 AS df FROM hits GROUP BY lexeme
        ), bm25 AS (
            SELECT hits.id,
                   sum(ln(1 + (stats.n - df.df + 0.5) / (df.df + 0.5)) * hits.tf * {BM25_K1 + 1}
                       / (hits.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * hits.dl / stats.avgdl))
                   ) AS score
            FROM hits JOIN df USING (lexeme) CROSS JOIN stats
            GROUP BY hits.id
        )"""


@functools.cache
def text_sql(*, ids: bool, card_types: bool, tags: bool, prompt: bool = False) -> str:
    """$1 tenant, filters, then the tsquery text, the words, the limit (`prompt`: only
    PROMPT_COLUMNS)."""
    where, n, filtered = _filtered(ids=ids, card_types=card_types, tags=tags)
    tsq, words, limit = (f"${n + k}" for k in range(1, 4))
    return (
        f"WITH {_bm25_ctes(where, tsq, words, filtered=filtered)} "
        f"SELECT {_columns(prompt)}, best.score "
        f"FROM (SELECT id, score FROM bm25 ORDER BY score DESC, id LIMIT {limit}) best "
        "JOIN cards ON cards.tenant_id = $1 AND cards.id = best.id "
        "ORDER BY best.score DESC, cards.id"
    )


def _nearest_cte(
    where: str, *, filtered: bool, probe: str, source: str, embedder: str, tsq: str, depth: str
) -> str:
    """`nearest(id, distance)`: the `depth` live cards of the filtered set nearest to `probe`
    (an expression over `source`, a FROM item), none when the tsquery `tsq` is empty (a query
    of stop words means nothing to rank by).

    Distances are computed first, from the embeddings alone, with no vector joined or copied.
    Unfiltered, they are sorted and the live cards picked off in order, each checked by one
    index probe until `depth` are found (~100 probes, not a join of every card; numbers in
    docs/performance.md). Filtered, the filtered cards are joined first, so a selective filter
    never walks the whole list. Either way a card only counts at the version its vector was
    made from, and a filtered query never comes back short.
    """
    distances = f"""
                SELECT e.card_id AS id, e.version, e.embedding <=> {probe} AS distance
                FROM card_embeddings e{source}
                WHERE e.tenant_id = $1 AND e.embedder = {embedder}
                  AND numnode(to_tsquery('english', {tsq})) > 0"""
    live = f"SELECT FROM cards WHERE {where} AND cards.id = d.id AND cards.version = d.version"
    if filtered:
        rows = f"({distances} OFFSET 0) d WHERE EXISTS ({live})"
    else:
        rows = f"({distances} ORDER BY distance, id OFFSET 0) d"
        rows += f" CROSS JOIN LATERAL ({live} LIMIT 1) live"
    return f"""nearest AS (
            SELECT d.id, d.distance FROM {rows}
            ORDER BY d.distance, d.id LIMIT {depth}
        )"""


@functools.cache
def _semantic_sql(*, ids: bool, card_types: bool, tags: bool, prompt: bool) -> str:
    """$1 tenant, filters, then the query vector, the embedder, the tsquery text (it only
    gates), the limit."""
    where, n, filtered = _filtered(ids=ids, card_types=card_types, tags=tags)
    vec, embedder, tsq, limit = (f"${n + k}" for k in range(1, 5))
    nearest = _nearest_cte(
        where,
        filtered=filtered,
        probe=f"{vec}{VEC}",
        source="",
        embedder=embedder,
        tsq=tsq,
        depth=limit,
    )
    return (
        f"WITH {nearest} "
        f"SELECT {_columns(prompt)}, 1 - nearest.distance AS score "
        "FROM nearest JOIN cards ON cards.tenant_id = $1 AND cards.id = nearest.id "
        "ORDER BY nearest.distance, cards.id"
    )


@functools.cache
def _hybrid_sql(*, ids: bool, card_types: bool, tags: bool, prompt: bool) -> str:
    """$1 tenant, filters, then the tsquery text, the words, the query vector, the same vector
    divided by the feedback weight, the embedder, the depth of each ranking, the limit."""
    where, n, filtered = _filtered(ids=ids, card_types=card_types, tags=tags)
    tsq, words, vec, scaled, embedder, depth, limit = (f"${n + k}" for k in range(1, 8))
    nearest = _nearest_cte(
        where,
        filtered=filtered,
        probe="probe.v",
        source=", probe",
        embedder=embedder,
        tsq=tsq,
        depth=depth,
    )
    return f"""
        WITH {_bm25_ctes(where, tsq, words, filtered=filtered)},
        lexical AS (
            SELECT id, row_number() OVER (ORDER BY score DESC, id) AS r FROM bm25
            ORDER BY r LIMIT {depth}
        ), feedback AS (
            SELECT avg(e.embedding) AS v
            FROM (SELECT id FROM lexical ORDER BY r LIMIT {FEEDBACK_CARDS}) best
            JOIN card_embeddings e
              ON e.tenant_id = $1 AND e.card_id = best.id AND e.embedder = {embedder}
        ), probe AS MATERIALIZED (  /* computed once, not once per card compared with it */
            SELECT coalesce(feedback.v + {scaled}{VEC}, {vec}{VEC}) AS v FROM feedback
        ), {nearest}, semantic AS (
            SELECT id, row_number() OVER (ORDER BY distance, id) AS r FROM nearest
        ), fused AS (
            SELECT id, sum(1.0 / ({RRF_K} + r))::float8 AS score
            FROM (SELECT id, r FROM lexical UNION ALL SELECT id, r FROM semantic) ranked
            GROUP BY id
        )
        SELECT {_columns(prompt)}, best.score
        FROM (SELECT id, score FROM fused ORDER BY score DESC, id LIMIT {limit}) best
        JOIN cards ON cards.tenant_id = $1 AND cards.id = best.id
        ORDER BY best.score DESC, cards.id
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
    words: str,
    filters: Filters,
    limit: int,
    prompt: bool = False,
) -> list[asyncpg.Record]:
    sql = text_sql(**filters.shape(), prompt=prompt)
    return await conn.fetch(sql, tenant_id, *filters.args(), tsquery, words, limit)


async def rank_semantic(
    conn: Connection,
    *,
    tenant_id: UUID,
    tsquery: str,
    vector: list[float],
    embedder: str,
    filters: Filters,
    limit: int,
    prompt: bool = False,
) -> list[asyncpg.Record]:
    sql = _semantic_sql(**filters.shape(), prompt=prompt)
    args = [tenant_id, *filters.args(), vector, embedder, tsquery, limit]
    return await conn.fetch(sql, *args)


async def rank_hybrid(
    conn: Connection,
    *,
    tenant_id: UUID,
    tsquery: str | None,
    words: str,
    vector: list[float],
    embedder: str,
    filters: Filters,
    depth: int,
    limit: int,
    prompt: bool = False,
) -> list[asyncpg.Record]:
    sql = _hybrid_sql(**filters.shape(), prompt=prompt)
    args = [
        tenant_id,
        *filters.args(),
        tsquery,
        words,
        vector,
        [v / FEEDBACK_WEIGHT for v in vector],
        embedder,
        depth,
        limit,
    ]
    return await conn.fetch(sql, *args)
