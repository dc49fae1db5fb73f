"""Embedding the cards that have no current embedding: in the background of every API process,
and on demand (`cards-api reindex`).

The cards table itself is the durable outbox: a live card whose current version has no vector
under the configured embedder is pending, whatever happened to the process that wrote it. A pass
asks which tenants have pending cards (ids only, through a granted function), then for each
tenant reads a small batch (a short transaction), embeds it with no connection held, and stores
the vectors (another short transaction; a vector for a version since replaced is dropped).
A tenant is embedded by one process at a time, the one holding its lease (`search/leases.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import asyncpg
import orjson
import structlog

from cards_api import metrics
from cards_api.db.queries import embeddings as embeddings_q
from cards_api.db.queries.tenancy import abandon, begin_for_tenant, commit
from cards_api.db.types import Connection
from cards_api.search.embedder import Embedder, EmbedderUnavailable
from cards_api.search.leases import TenantLeases
from cards_api.search.text import card_text

log = structlog.get_logger("cards_api.embedding_worker")

BATCH = 64
IDLE_SECONDS = 5.0
RETRY_SECONDS = 10.0
FULL_SCAN_SECONDS = 600.0


T = TypeVar("T")


async def _in_tenant(
    pool: asyncpg.Pool, tenant_id: UUID, work: Callable[[Connection], Awaitable[T]]
) -> T:
    """`work` in a short transaction of its own, bound to the tenant."""
    async with pool.acquire() as conn:
        await begin_for_tenant(conn, tenant_id=tenant_id)
        try:
            result = await work(conn)
        except BaseException:
            await abandon(conn)
            raise
        await commit(conn)
        return result


async def embed_tenant(
    pool: asyncpg.Pool,
    embedder: Embedder,
    tenant_id: UUID,
    *,
    on_embedded: Callable[[int], None] | None = None,
) -> int:
    """Embed every pending card of one tenant, a batch at a time; returns how many."""
    done = 0
    while True:
        rows = await _in_tenant(
            pool,
            tenant_id,
            lambda conn: embeddings_q.pending_cards(
                conn, tenant_id=tenant_id, embedder=embedder.name, limit=BATCH
            ),
        )
        if not rows:
            return done
        texts = [card_text(row["title"], row["tags"], orjson.loads(row["content"])) for row in rows]
        vectors = await embedder.embed(texts)
        triples = [
            (row["id"], row["version"], vector) for row, vector in zip(rows, vectors, strict=True)
        ]
        await _in_tenant(
            pool,
            tenant_id,
            lambda conn, triples=triples: embeddings_q.store_embeddings(  # type: ignore[misc]
                conn, tenant_id=tenant_id, embedder=embedder.name, cards=triples
            ),
        )
        done += len(rows)
        if on_embedded is not None:
            on_embedded(len(rows))
        if len(rows) < BATCH:
            return done


async def tenants_with_pending(pool: asyncpg.Pool, embedder: Embedder) -> list[UUID]:
    async with pool.acquire() as conn:
        return await embeddings_q.tenants_with_pending(conn, embedder=embedder.name)


async def count_pending(pool: asyncpg.Pool, embedder: Embedder, tenants: list[UUID]) -> int:
    total = 0
    for tenant_id in tenants:
        count = await _in_tenant(
            pool,
            tenant_id,
            lambda conn, t=tenant_id: embeddings_q.count_pending(
                conn, tenant_id=t, embedder=embedder.name
            ),  # type: ignore[misc]
        )
        assert isinstance(count, int)
        total += count
    return total


class EmbeddingWorker:
    """One per API process. A write that could not embed its cards names its tenant (`kick`),
    and that tenant's pending cards are embedded at once. A full scan of every tenant (the
    cards table is the outbox) runs at start-up, after a failed pass, and every
    `full_scan_seconds`: the safety net for work left by a process that died. Between those,
    nothing scans the whole table, so the service's requests never wait behind it.

    A tenant whose lease another process holds is passed over and looked at again on the next
    pass (`idle_seconds` later): the holder may have read its pending cards before the write
    that kicked this worker.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: Embedder,
        *,
        leases: TenantLeases | None = None,
        idle_seconds: float = IDLE_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        full_scan_seconds: float = FULL_SCAN_SECONDS,
    ) -> None:
        self.pool = pool
        self.embedder = embedder
        self.leases = leases
        self.idle_seconds = idle_seconds
        self.retry_seconds = retry_seconds
        self.full_scan_seconds = full_scan_seconds
        self._wake = asyncio.Event()
        self._kicked: set[UUID] = set()
        self._full_scan_due = 0.0  # monotonic time; 0: at the first pass
        self._pending: dict[UUID, int] = {}

    def kick(self, tenant_id: UUID | None = None) -> None:
        """Ask for a pass soon: for this tenant's cards, or (None) a full scan."""
        if tenant_id is None:
            self._full_scan_due = 0.0
        else:
            self._kicked.add(tenant_id)
        self._wake.set()

    async def run_pass(self) -> int:
        now = time.monotonic()
        if now >= self._full_scan_due:
            tenants = set(await tenants_with_pending(self.pool, self.embedder)) | self._kicked
            self._pending = {}
            self._full_scan_due = now + self.full_scan_seconds
        else:
            tenants = set(self._kicked)
        self._kicked.clear()
        done = 0
        for tenant_id in sorted(tenants):
            try:
                embedded = await self._embed_leased(tenant_id)
                if embedded is None:  # another process holds the lease: look again next pass
                    self._kicked.add(tenant_id)
                else:
                    done += embedded
            finally:
                self._pending[tenant_id] = await count_pending(
                    self.pool, self.embedder, [tenant_id]
                )
        metrics.set_pending_embeddings(sum(self._pending.values()))
        return done

    async def _embed_leased(self, tenant_id: UUID) -> int | None:
        """The tenant's pending cards embedded, or None when another process holds its lease."""
        lease = (
            self.leases.hold(tenant_id)
            if self.leases
            else contextlib.nullcontext(enter_result=True)
        )
        async with lease as ours:
            return await embed_tenant(self.pool, self.embedder, tenant_id) if ours else None

    async def run_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_seconds)
            self._wake.clear()
            started = time.perf_counter()
            try:
                done = await self.run_pass()
            except EmbedderUnavailable as exc:
                log.warning("embedding_pass_failed", error=str(exc), retry_in_s=self.retry_seconds)
                self._full_scan_due = 0.0  # what failed is found again by the next scan
                await asyncio.sleep(self.retry_seconds)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("embedding_pass_failed", error=type(exc).__name__)
                self._full_scan_due = 0.0
                await asyncio.sleep(self.retry_seconds)
            else:
                if done:
                    # With its duration: the seconds a pass competed with requests for the
                    # CPU can be told apart in a latency timeline (docs/performance.md).
                    duration_ms = round((time.perf_counter() - started) * 1000, 1)
                    log.info("cards_embedded", cards=done, duration_ms=duration_ms)
