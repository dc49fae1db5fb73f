"""A tenant's pending cards are embedded by one process at a time (`search/leases.py`): two
workers that find the same backlog do not both embed it, `cards-api reindex` waits for a lease
another process holds, and without a lease connection a worker still embeds (as before leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from cards_api.db.pool import connect_leases, create_pool
from cards_api.search.embedder import Embedder, Vector
from cards_api.search.leases import TenantLeases
from cards_api.search.worker import EmbeddingWorker, count_pending
from cards_api.settings import Settings
from tests.support import Tenant, card


class Gate:
    """The service's embedder, counting the calls that embed the test tenant's cards. The first
    such call waits (up to a second) for a second one, so that two workers that both read the
    backlog are both embedding it at once, which is what the lease must prevent."""

    def __init__(self, inner: Embedder, marker: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.local = inner.local
        self.marker = marker
        self.calls: list[list[str]] = []
        self._second = asyncio.Event()

    async def embed(self, texts: list[str]) -> list[Vector]:
        if any(self.marker in text for text in texts):
            self.calls.append(texts)
            if len(self.calls) > 1:
                self._second.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._second.wait(), 1.0)
        return await self.inner.embed(texts)

    async def close(self) -> None:
        return None


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url or "", settings)
    try:
        yield pool
    finally:
        await pool.close()


async def _backlog(
    client: httpx.AsyncClient, owner_pool: asyncpg.Pool, tenant: Tenant, marker: str
) -> None:
    """Three cards of the tenant waiting for their vectors, as after an embedder outage."""
    cards = [card("insight", f"{marker} {n}") for n in range(3)]
    created = await client.post(
        "/api/v1/cards/batch", json={"cards": cards}, headers=tenant.headers()
    )
    assert created.status_code == 201
    async with owner_pool.acquire() as conn:
        await conn.execute("DELETE FROM card_embeddings WHERE tenant_id = $1", tenant.id)


async def test_two_processes_embed_one_backlog_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    owner_pool: asyncpg.Pool,
    pool: asyncpg.Pool,
    settings: Settings,
    tenant: Tenant,
) -> None:
    marker = f"backlog-{uuid.uuid4().hex}"
    await _backlog(client, owner_pool, tenant, marker)
    gate = Gate(app.state.embedder, marker)
    dsn = settings.database_url or ""
    # Two processes' workers: each with leases on a connection of its own.
    leases = [TenantLeases(lambda: connect_leases(dsn, settings)) for _ in range(2)]
    workers = [EmbeddingWorker(pool, gate, leases=mine) for mine in leases]
    try:
        for worker in workers:
            worker.kick(tenant.id)
        await asyncio.gather(*(worker.run_pass() for worker in workers))
    finally:
        for mine in leases:
            await mine.close()
    assert await count_pending(pool, gate, [tenant.id]) == 0
    # At most once: the service's own worker may have found the backlog first (its full scan).
    assert len(gate.calls) <= 1, "both workers embedded the same cards"


async def test_reindex_waits_for_a_lease_another_process_holds(settings: Settings) -> None:
    dsn = settings.database_url or ""
    worker, reindex = (TenantLeases(lambda: connect_leases(dsn, settings)) for _ in range(2))
    tenant_id = uuid.uuid4()
    try:
        async with worker.hold(tenant_id) as ours:
            assert ours
            async with reindex.hold(tenant_id) as theirs:  # a worker passes over it
                assert not theirs
            waiting = asyncio.create_task(_hold_and_wait(reindex, tenant_id))
            await asyncio.sleep(0.5)
            assert not waiting.done(), "the lease was taken while another process held it"
        assert await asyncio.wait_for(waiting, 5)
    finally:
        await worker.close()
        await reindex.close()


async def _hold_and_wait(leases: TenantLeases, tenant_id: uuid.UUID) -> bool:
    async with leases.hold(tenant_id, wait=True) as ours:
        return ours


async def test_without_a_lease_connection_a_worker_still_embeds(
    app: FastAPI,
    client: httpx.AsyncClient,
    owner_pool: asyncpg.Pool,
    pool: asyncpg.Pool,
    tenant: Tenant,
) -> None:
    marker = f"unleased-{uuid.uuid4().hex}"
    await _backlog(client, owner_pool, tenant, marker)

    attempts = 0

    async def refused() -> asyncpg.Connection:
        nonlocal attempts
        attempts += 1
        raise ConnectionRefusedError("no lease connection")

    leases = TenantLeases(refused)
    worker = EmbeddingWorker(pool, app.state.embedder, leases=leases)
    worker.kick(tenant.id)
    await worker.run_pass()
    assert await count_pending(pool, app.state.embedder, [tenant.id]) == 0
    async with leases.hold(uuid.uuid4()) as ours:  # the next tenant: no new attempt yet
        assert ours
    assert attempts == 1
