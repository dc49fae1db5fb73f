"""The search indexes one API process holds: which tenants', how many cards in all, when each
is loaded again, and the rule that keeps a stale one from answering.

A search uses a tenant's index only if the index is current: the statement that fetches the
ranked cards returns them only while the tenant's generation is the one the index was loaded at
(`db/queries/search_index.py`). Otherwise, and whenever no index is loaded yet, the search runs
as SQL (`db/queries/search.py`, the same ranking); once a tenant is searched often
(`min_searches` within `SEARCH_WINDOW_SECONDS`) a load is queued: in the background, on a pool
connection, one load at a time per process, and for one tenant no sooner than ten times its last
load's duration after it (at least a second), so a tenant being written to all the time is
searched by SQL rather than reloaded on every request. Indexes are dropped least recently used
first to keep the process under `max_cards` cards.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from uuid import UUID

import asyncpg
import structlog

from cards_api import metrics, stalls
from cards_api.db.queries import search_index as search_index_q
from cards_api.db.queries.tenancy import abandon, begin_for_tenant, commit
from cards_api.db.types import Connection, Row
from cards_api.search.index import Ranking, TenantIndex

log = structlog.get_logger("cards_api.search_index")

MIN_RELOAD_SECONDS = 1.0
RELOAD_COST_FACTOR = 10.0
"""A tenant's index is loaded again no sooner than this many times its last load's duration:
loads take at most ~10% of a process's time, however often the tenant is written to."""
SIZE_RECHECK_SECONDS = 300.0
"""A tenant too small (or too large) for an index is counted again after about this long
(between half and one and a half times it, at random): a tenant that grows past the minimum is
ranked by SQL, correctly, until then. The spread keeps a thousand small tenants, first counted
together when searches begin, from all coming due again in the same seconds (a fixed 60 s is
the likeliest reading of a first Q latency run with a p99 of 270 ms: its 1,000 tenants came
due together a minute after Q began)."""
MAX_SCHEDULED = 100_000
"""Tenants whose next load time is remembered before the past ones are forgotten."""
SEARCH_WINDOW_SECONDS = 10.0
MIN_SEARCHES = 20
"""A tenant's index is loaded once the tenant is searched this many times within one window of
`SEARCH_WINDOW_SECONDS` in this process (twice a second): an index pays for its load and memory
only when searches come often, and a tenant searched now and then is ranked by SQL at no cost
to the process. Without it every tenant that searched once was counted or loaded in the
background: Q's 1,000 tenants kept the loader busy through its whole latency runs (80-110
transactions a second beside the requests, `make bench` timeline of f14dd7d)."""
MAX_WORDS = 100_000
"""Words whose lexemes are remembered (a query's words are looked up in PostgreSQL once)."""

Key = tuple[UUID, str]


class SearchIndexes:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_cards: int,
        min_cards: int = 1,
        min_searches: int = MIN_SEARCHES,
    ) -> None:
        self._pool = pool
        self.max_cards = max_cards
        self.min_cards = min_cards
        self.min_searches = min_searches
        self._searches: dict[Key, int] = {}
        self._window_ends = 0.0
        self._indexes: OrderedDict[Key, TenantIndex] = OrderedDict()
        self._cards = 0
        self._not_before: dict[Key, float] = {}
        self._queue: OrderedDict[Key, None] = OrderedDict()
        self._loader: asyncio.Task[None] | None = None
        self._words: dict[str, tuple[str, ...]] = {}

    @property
    def cards(self) -> int:
        """Cards held in all indexes."""
        return self._cards

    def current(self, tenant_id: UUID, embedder: str) -> TenantIndex | None:
        """The tenant's index if one is loaded (it may have gone stale since); else None, and a
        load queued if the tenant is searched often."""
        if self.max_cards <= 0:  # indexes off: nothing to count or load
            return None
        key = (tenant_id, embedder)
        index = self._indexes.get(key)
        if index is not None:
            self._indexes.move_to_end(key)
            return index
        if self._searched_often(key):
            self._want(key)
        return None

    def _searched_often(self, key: Key) -> bool:
        now = time.monotonic()
        if now >= self._window_ends:
            self._searches.clear()
            self._window_ends = now + SEARCH_WINDOW_SECONDS
        searches = self._searches.get(key, 0) + 1
        self._searches[key] = searches
        return searches >= self.min_searches

    def stale(self, tenant_id: UUID, embedder: str, index: TenantIndex) -> None:
        """`index` answered for an older generation: drop it and queue a load."""
        key = (tenant_id, embedder)
        if self._indexes.get(key) is index:
            self._drop(key)
        self._want(key)

    async def lexemes(self, conn: Connection, words: Sequence[str]) -> list[str] | None:
        """The query's lexemes, as `to_tsvector('english', …)` makes them; None when a word is
        several lexemes (PostgreSQL matches those as a phrase, which only SQL does here)."""
        missing = [word for word in dict.fromkeys(words) if word not in self._words]
        if missing:
            found = await search_index_q.lexemes(conn, missing)
            if len(self._words) + len(found) > MAX_WORDS:
                self._words.clear()
            self._words.update((word, tuple(lexemes)) for word, lexemes in found.items())
        result: list[str] = []
        for word in words:
            lexemes = self._words.get(word, ())
            if len(lexemes) > 1:
                return None
            result.extend(lexemes)
        return result

    async def fetch(
        self,
        conn: Connection,
        index: TenantIndex,
        ranking: Ranking,
        *,
        tenant_id: UUID,
        embedder: str,
        prompt: bool,
    ) -> Sequence[Row] | None:
        """The ranked cards as the SQL ranking returns them; None (and the index dropped) when
        the index turns out stale.

        A prompt's columns (a context's ~100 candidates) come from the index itself once one
        statement has confirmed the generation: every column is one the generation covers, and
        PostgreSQL writing ~100 cards' JSON out and the API reading it back was most of a
        context's database work (docs/performance.md)."""
        rows: Sequence[Row] | None
        if prompt:
            still = await search_index_q.current(
                conn, tenant_id=tenant_id, generation=index.generation
            )
            rows = index.prompt_rows(ranking) if still else None
        else:
            ids, scores = index.cards(ranking)
            rows = await search_index_q.fetch_ranked(
                conn,
                tenant_id=tenant_id,
                ids=ids,
                scores=scores,
                generation=index.generation,
            )
        if rows is None:
            self.stale(tenant_id, embedder, index)
        return rows

    def _want(self, key: Key) -> None:
        if key in self._queue:
            return
        now = time.monotonic()
        if now < self._not_before.get(key, 0.0):
            return
        if len(self._not_before) > MAX_SCHEDULED:  # one entry per tenant ever searched
            self._not_before = {k: t for k, t in self._not_before.items() if t > now}
        self._queue[key] = None
        if self._loader is None or self._loader.done():
            self._loader = asyncio.create_task(self._load_queued())

    async def _load_queued(self) -> None:
        while self._queue:
            key = next(iter(self._queue))
            started = time.monotonic()
            try:
                await self._load(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the search goes on by SQL; the next one asks again
                log.warning("search_index_load_failed", tenant_id=str(key[0]), error=str(exc))
            finally:
                self._queue.pop(key, None)
                took = time.monotonic() - started
                self._not_before[key] = max(
                    self._not_before.get(key, 0.0),
                    time.monotonic() + max(MIN_RELOAD_SECONDS, RELOAD_COST_FACTOR * took),
                )

    async def _load(self, key: Key) -> None:
        tenant_id, embedder = key
        stalls.index_load()
        async with self._pool.acquire() as conn:
            try:
                await begin_for_tenant(conn, tenant_id=tenant_id, snapshot=True)
                size = await search_index_q.live_cards(conn, tenant_id=tenant_id)
                if not self.min_cards <= size <= self.max_cards:
                    # Small: SQL ranks it cheaply, and a thousand small copies cost memory and
                    # garbage-collector time (Q on 1,000 tenants of 50 cards: p99 34 -> 310 ms
                    # while they loaded). Larger than the whole budget: SQL, always.
                    await commit(conn)
                    recheck = SIZE_RECHECK_SECONDS * random.uniform(0.5, 1.5)  # noqa: S311
                    self._not_before[key] = time.monotonic() + recheck
                    return
                generation = await search_index_q.generation(conn, tenant_id=tenant_id)
                rows = await search_index_q.load(conn, tenant_id=tenant_id, embedder=embedder)
                await commit(conn)
            except BaseException:
                await abandon(conn)
                raise
        # Building is NumPy and Python over every card: off the event loop.
        index = await asyncio.to_thread(TenantIndex, rows, generation=generation)
        self._drop(key)
        self._indexes[key] = index
        self._cards += index.size
        while self._cards > self.max_cards:
            self._drop(next(iter(self._indexes)))
        metrics.set_search_index_cards(self._cards)

    def _drop(self, key: Key) -> None:
        index = self._indexes.pop(key, None)
        if index is not None:
            self._cards -= index.size
            metrics.set_search_index_cards(self._cards)

    async def load_now(self, tenant_id: UUID, embedder: str) -> TenantIndex | None:
        """Load the tenant's index now, whatever its schedule (a warm-up; tests); None when the
        tenant is smaller than `min_cards`, larger than the budget, or indexes are off."""
        if self.max_cards <= 0:
            return None
        await self._load((tenant_id, embedder))
        return self._indexes.get((tenant_id, embedder))

    async def close(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
