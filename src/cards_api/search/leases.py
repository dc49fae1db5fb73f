"""Which process embeds a tenant's pending cards: one at a time.

Every API process runs an embedding worker, and each looks for pending cards at start, after a
failed pass and every few minutes. Without a lease, the processes that find the same backlog
(after a deploy, an embedder outage, a change of model) all embed all of it: with N workers, N
times the CPU, or N times the bill of a remote embedder. A worker takes a tenant's lease before
embedding the tenant's pending cards and passes over a tenant whose lease another process holds
(it looks again on its next pass); `cards-api reindex` waits for the lease.

A lease is a session-level advisory lock (`db/queries/embeddings.py`), taken on a connection of
the holder's own: embedding holds no pooled connection while the embedder works, and a lease must
outlive the short transactions around it. A process that dies loses its connection and with it
its leases, so nothing is left behind to expire. Through a transaction pooler a session lock
would not hold, so the connection goes straight to PostgreSQL, as the revocation listener's
does. The lease only saves work; nothing depends on it for correctness (a vector of a version
since replaced is dropped on write, and two writers of a card's vector store the same one). So
when no lease connection can be had, a worker embeds without one, as it did before leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final
from uuid import UUID

import asyncpg
import structlog

from cards_api.db.queries import embeddings as embeddings_q

log = structlog.get_logger("cards_api.embedding_leases")

WAIT_POLL_S: Final = 0.2
"""How often `hold(wait=True)` asks again for a lease another process holds."""
RECONNECT_S: Final = 30.0
"""After a failed connection attempt, how long the leases are done without before the next one
(not once per tenant of a pass, nor a warning each time)."""
CLOSE_TIMEOUT_S: Final = 5.0
"""How long closing the leases' connection at shutdown may wait before it is dropped."""

_LOST = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class TenantLeases:
    """One process's leases, on one connection opened when first needed and kept."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self._conn: asyncpg.Connection | None = None
        self._reconnect_at = 0.0

    async def _connection(self) -> asyncpg.Connection | None:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        self._conn = None
        if time.monotonic() < self._reconnect_at:
            return None
        try:
            self._conn = await self._connect()
        except _LOST as exc:
            log.warning(
                "embedding_leases_unavailable", error=type(exc).__name__, retry_in_s=RECONNECT_S
            )
            self._reconnect_at = time.monotonic() + RECONNECT_S
        return self._conn

    def _drop(self) -> None:
        """Forget a connection in doubt; closing it gives up whatever lease it held."""
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        self._conn = None

    async def _try(self, tenant_id: UUID) -> bool | None:
        """True: taken; False: another process holds it; None: no lease can be asked for."""
        conn = await self._connection()
        if conn is None:
            return None
        try:
            return await embeddings_q.try_lease(conn, tenant_id=tenant_id)
        except _LOST as exc:
            log.warning("embedding_leases_unavailable", error=type(exc).__name__)
            self._drop()
            return None

    @contextlib.asynccontextmanager
    async def hold(self, tenant_id: UUID, *, wait: bool = False) -> AsyncIterator[bool]:
        """Yield True while the tenant is this process's to embed: its lease is held, or no lease
        could be asked for. Yield False when another process holds it, or with `wait`, wait for
        it instead."""
        taken = await self._try(tenant_id)
        while wait and taken is False:
            await asyncio.sleep(WAIT_POLL_S)
            taken = await self._try(tenant_id)
        if not taken:
            yield taken is None
            return
        try:
            yield True
        finally:
            await self._release(tenant_id)

    async def _release(self, tenant_id: UUID) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            return
        try:
            await embeddings_q.end_lease(conn, tenant_id=tenant_id)
        except _LOST:
            self._drop()

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(*_LOST):
                await self._conn.close(timeout=CLOSE_TIMEOUT_S)
        self._conn = None
