"""One tenant's live cards, ranked in the API process: the same rankings as the statements in
`db/queries/search.py`, without asking PostgreSQL to compute them.

A hybrid search over 2,000 cards spent ~3 ms of PostgreSQL's CPU per query computing BM25 over
the matching cards and 2,000 cosine distances (docs/performance.md); PostgreSQL was most of the
search's cost and S could not reach three times its peer. Held in memory (NumPy arrays, ~1.5 KB
a card with 256-dimension vectors, and the card's title and content for a context's prompt), the
same rankings take a fraction of a millisecond, and the database only returns the chosen cards.

The arithmetic is the SQL's, step for step: BM25 over the lexemes of each card's `search`
tsvector (term frequency = positions, length = lexemes, N = the filtered live cards, average
length over the matching ones), cosine distance as pgvector computes it (single-precision sums,
clamped), pseudo-relevance feedback from the 8 best lexical matches, reciprocal rank fusion, and
ties ordered by card id (rows are held in id order). Rounding can differ in the last bits, so two
cards whose scores differ by less than that may swap; nothing else can.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import numpy as np
import numpy.typing as npt

from cards_api.db.queries.search import (
    BM25_B,
    BM25_K1,
    FEEDBACK_CARDS,
    FEEDBACK_WEIGHT,
    PROMPT_FIELDS,
    RRF_K,
    Filters,
)

Mask = npt.NDArray[np.bool_]
Rows = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float32]
Ranking = tuple[Rows, Floats]
"""Rows (positions in id order) and their scores, best first."""
_EMPTY: Ranking = (np.zeros(0, dtype=np.int64), np.zeros(0))


class TenantIndex:
    """An immutable copy of one tenant's searchable cards at one generation."""

    def __init__(self, rows: Sequence[Any], *, generation: int | None) -> None:
        """`rows` as `db/queries/search_index.LOAD` returns them (in id order)."""
        self.generation = generation
        self.size = len(rows)
        self.ids: list[UUID] = [row["id"] for row in rows]
        # What a prompt is built from, as PostgreSQL returned it, one dict a card: a context
        # copies ~100 of them (building each from a tuple cost ~2 µs).
        self._prompt: list[dict[str, Any]] = [
            {column: row[column] for column in PROMPT_FIELDS} for row in rows
        ]
        self.row_of: dict[UUID, int] = {card_id: i for i, card_id in enumerate(self.ids)}
        self._types: dict[str, Mask] = {}
        self._tags: dict[str, Mask] = {}
        for i, row in enumerate(rows):
            self._mark(self._types, (row["card_type"],), i)
            self._mark(self._tags, row["tags"], i)
        self._build_terms(rows)
        self._build_vectors(rows)

    def _mark(self, masks: dict[str, Mask], keys: Iterable[str], row: int) -> None:
        for key in keys:
            mask = masks.get(key)
            if mask is None:
                mask = masks[key] = np.zeros(self.size, dtype=np.bool_)
            mask[row] = True

    def _build_terms(self, rows: Sequence[Any]) -> None:
        """Postings per lexeme in one flat array (CSR): rows and term frequencies."""
        self.dl = np.array([row["dl"] for row in rows], dtype=np.float64)
        term_of: dict[str, int] = {}
        terms: list[int] = []
        docs: list[int] = []
        tfs: list[int] = []
        for i, row in enumerate(rows):
            lexemes = row["lexemes"]
            terms.extend(term_of.setdefault(lexeme, len(term_of)) for lexeme in lexemes)
            docs.extend([i] * len(lexemes))
            tfs.extend(row["tfs"])
        term_rows = np.array(terms, dtype=np.int64)
        order = np.argsort(term_rows, kind="stable")
        self._term_of = term_of
        self._docs = np.array(docs, dtype=np.int64)[order]
        self._tfs = np.array(tfs, dtype=np.float64)[order]
        counts = np.bincount(term_rows, minlength=len(term_of))
        self._starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)

    def _build_vectors(self, rows: Sequence[Any]) -> None:
        """The vectors of the cards' current versions (`current`) for the nearest cards, and
        every card's vector whatever its version for the feedback, as the SQL uses them."""
        vectors = [_array(row["embedding"]) for row in rows]
        first = next((vector for vector in vectors if vector is not None), None)
        dimension = 0 if first is None else len(first)
        self.vectors = np.zeros((self.size, dimension), dtype=np.float32)
        self.embedded = np.zeros(self.size, dtype=np.bool_)
        self.current = np.zeros(self.size, dtype=np.bool_)
        for i, (row, vector) in enumerate(zip(rows, vectors, strict=True)):
            if vector is None or len(vector) != dimension:
                continue
            self.vectors[i] = vector
            self.embedded[i] = True
            self.current[i] = row["embedded_version"] == row["version"]
        squares = self.vectors * self.vectors
        self._norms = squares.sum(axis=1, dtype=np.float32).astype(np.float64)
        self._current_rows = np.flatnonzero(self.current)
        self._zero_norm = self._norms == 0
        with np.errstate(divide="ignore"):
            self._inverse_norms = np.where(self._zero_norm, 0.0, 1.0 / np.sqrt(self._norms)).astype(
                np.float32
            )

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def mask(self, filters: Filters) -> Mask | None:
        """The filtered live cards; None without filters (every card)."""
        if filters.ids is None and filters.card_types is None and filters.tags is None:
            return None
        mask = np.ones(self.size, dtype=np.bool_)
        if filters.ids is not None:
            wanted = np.zeros(self.size, dtype=np.bool_)
            wanted[[self.row_of[i] for i in filters.ids if i in self.row_of]] = True
            mask &= wanted
        for masks, keys in ((self._types, filters.card_types), (self._tags, filters.tags)):
            if keys is not None:
                any_of = np.zeros(self.size, dtype=np.bool_)
                for key in keys:
                    if key in masks:
                        any_of |= masks[key]
                mask &= any_of
        return mask

    def bm25(self, lexemes: Iterable[str], mask: Mask | None) -> Ranking:
        """Every filtered card holding any of `lexemes`, and its BM25 score (unordered)."""
        found: list[tuple[Rows, Floats]] = []
        for lexeme in dict.fromkeys(lexemes):
            term = self._term_of.get(lexeme)
            if term is None:
                continue
            start, end = self._starts[term], self._starts[term + 1]
            docs, tfs = self._docs[start:end], self._tfs[start:end]
            if mask is not None:
                keep = mask[docs]
                docs, tfs = docs[keep], tfs[keep]
            if len(docs):
                found.append((docs, tfs))
        if not found:
            return _EMPTY
        hit = np.zeros(self.size, dtype=np.bool_)
        for docs, _ in found:
            hit[docs] = True
        matched = np.flatnonzero(hit)
        n = float(self.size if mask is None else np.count_nonzero(mask))
        avgdl = float(self.dl[matched].mean())
        scores = np.zeros(self.size)
        for docs, tfs in found:
            df = float(len(docs))
            idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
            norm = BM25_K1 * (1 - BM25_B + BM25_B * self.dl[docs] / avgdl)
            scores[docs] += idf * tfs * (BM25_K1 + 1) / (tfs + norm)
        return matched, scores[matched]

    def text(self, lexemes: Iterable[str], mask: Mask | None, limit: int) -> Ranking:
        return _highest(*self.bm25(lexemes, mask), limit)

    def nearest(self, probe: Vector, mask: Mask | None, depth: int) -> Ranking:
        """The `depth` filtered cards nearest to `probe` by cosine distance, with the distance,
        nearest first (only cards whose vector is of their current version).

        Candidates are picked by dot product over each card's norm (one pass over the matrix,
        little else over all cards); then pgvector's exact distance is computed for the
        candidates alone, with every card within rounding of the last one kept, so the pick
        changes nothing but the cost (~300 of ~600 µs for 2,000 cards)."""
        if self.dimension == 0 or self.dimension != len(probe):
            return _EMPTY
        rows = self._current_rows if mask is None else np.flatnonzero(self.current & mask)
        # The whole matrix at once, then the eligible rows (gathering them first cost more than
        # the product). Row by row (`vecdot`: BLAS's dot for each row, the same kernel on the
        # same alignment for every row), not one matrix-vector product: that sums a row in an
        # order that depends on where the row sits, so identical cards got distances a few 1e-8
        # apart and their ties were broken by position rather than by id as PostgreSQL does.
        dots = np.vecdot(self.vectors, probe)[rows]
        probe_norm = float(np.dot(probe, probe))
        if len(rows) > depth:
            closeness = dots * self._inverse_norms[rows]
            cut = -np.partition(-closeness, depth - 1)[depth - 1]
            # Closeness is similarity times |probe|; single-precision sums err by ~1e-7 of it.
            slack = 1e-5 * (abs(float(cut)) + np.sqrt(probe_norm))
            picked = np.flatnonzero((closeness >= cut - slack) | self._zero_norm[rows])
            rows, dots = rows[picked], dots[picked]
        # pgvector: 1 - dot / sqrt(|a|² |b|²), sums in single precision, clamped to [-1, 1].
        with np.errstate(divide="ignore", invalid="ignore"):
            similarity = dots.astype(np.float64) / np.sqrt(self._norms[rows] * probe_norm)
        distance = 1.0 - np.clip(similarity, -1.0, 1.0)
        # PostgreSQL orders NaN (a zero vector's distance) after every number.
        order = _smallest(np.nan_to_num(distance, nan=np.inf), rows, depth)
        return rows[order], distance[order]

    def semantic(self, vector: Sequence[float], mask: Mask | None, limit: int) -> Ranking:
        rows, distance = self.nearest(np.asarray(vector, dtype=np.float32), mask, limit)
        return rows, 1.0 - distance

    def hybrid(
        self,
        lexemes: Sequence[str],
        vector: Sequence[float],
        mask: Mask | None,
        *,
        depth: int,
        limit: int,
    ) -> Ranking:
        lexical, _ = self.text(lexemes, mask, depth)
        probe = np.asarray(vector, dtype=np.float32)
        best = lexical[:FEEDBACK_CARDS]
        best = best[self.embedded[best]]
        if len(best) and self.dimension == len(probe):
            # pgvector's avg sums in double and stores single; `+` adds singles.
            mean = self.vectors[best].astype(np.float64).mean(axis=0).astype(np.float32)
            probe = mean + probe / np.float32(FEEDBACK_WEIGHT)
        semantic, _ = self.nearest(probe, mask, depth)
        fused = np.zeros(self.size)
        for ranked in (lexical, semantic):
            fused[ranked] += 1.0 / (RRF_K + np.arange(1, len(ranked) + 1, dtype=np.float64))
        rows = np.flatnonzero(fused)
        return _highest(rows, fused[rows], limit)

    def cards(self, ranking: Ranking) -> tuple[list[UUID], list[float]]:
        rows, scores = ranking
        return [self.ids[row] for row in rows.tolist()], scores.tolist()

    def prompt_rows(self, ranking: Ranking) -> list[dict[str, Any]]:
        """The ranked cards with the prompt's columns and their scores, as the SQL rankings
        return them with `prompt`; only valid while the tenant's generation is this index's."""
        rows, scores = ranking
        return [
            {**self._prompt[row], "score": score}
            for row, score in zip(rows.tolist(), scores.tolist(), strict=True)
        ]


def _array(vector: Any) -> npt.NDArray[np.float32] | None:
    """A stored vector as an array: pgvector's codec hands out its own `Vector`."""
    if vector is None:
        return None
    return np.asarray(vector.to_numpy() if hasattr(vector, "to_numpy") else vector, np.float32)


def _highest(rows: Rows, scores: Floats, limit: int) -> Ranking:
    """The `limit` best-scored rows, best first, ties by card id."""
    order = _smallest(-scores, rows, limit)
    return rows[order], scores[order]


def _smallest(key: Floats, rows: Rows, limit: int) -> Rows:
    """Positions of the `limit` smallest keys, ties by row (card id), smallest first."""
    if limit <= 0:
        return np.zeros(0, dtype=np.int64)
    if len(key) > limit:
        # Every key tied with the limit-th is kept, so that ties are settled by id below.
        candidates = np.flatnonzero(key <= np.partition(key, limit - 1)[limit - 1])
    else:
        candidates = np.arange(len(key))
    order = np.lexsort((rows[candidates], key[candidates]))[:limit]
    return candidates[order]
