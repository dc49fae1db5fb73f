"""Periodic clean-up in every API process: expired idempotency records and contexts.

Each job deletes in small batches through a function granted to the app role (it runs as the
maintenance role). Jitter keeps several processes from running in step.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from cards_api.db.queries import contexts as contexts_q
from cards_api.db.queries import idempotency as idempotency_q

log = structlog.get_logger("cards_api.housekeeping")

EVERY_SECONDS = 300.0
BATCH = 1000


Delete = Callable[..., Awaitable[int]]
"""A granted purge function's call: `delete(conn, batch=n)` deletes up to n expired rows."""


async def in_batches(pool: asyncpg.Pool, delete: Delete, *, batch: int = BATCH) -> int:
    """Run `delete` until a batch comes back short, a connection at a time; how many in all."""
    total = 0
    while True:
        async with pool.acquire() as conn:
            deleted = await delete(conn, batch=batch)
        total += deleted
        if deleted < batch:
            return total


async def purge_contexts(pool: asyncpg.Pool, *, batch: int = BATCH) -> int:
    return await in_batches(pool, contexts_q.purge_expired, batch=batch)


async def purge_idempotency_records(pool: asyncpg.Pool, *, batch: int = BATCH) -> int:
    return await in_batches(pool, idempotency_q.purge_expired, batch=batch)


JOBS: dict[str, Callable[[asyncpg.Pool], Awaitable[int]]] = {
    "idempotency_records": purge_idempotency_records,
    "contexts": purge_contexts,
}


async def run_once(pool: asyncpg.Pool) -> dict[str, int]:
    """Run every job once; what each deleted."""
    return {name: await job(pool) for name, job in JOBS.items()}


async def purge_forever(pool: asyncpg.Pool, *, every_seconds: float = EVERY_SECONDS) -> None:
    while True:
        await asyncio.sleep(every_seconds * random.uniform(0.5, 1.5))  # noqa: S311
        for name, job in JOBS.items():
            started = time.perf_counter()
            try:
                deleted = await job(pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("purge_failed", job=name, error=type(exc).__name__)
            else:
                # Logged even when nothing was deleted: a latency spike can then be matched
                # against the purges that ran (docs/performance.md).
                duration_ms = round((time.perf_counter() - started) * 1000, 1)
                log.info("purged", job=name, deleted=deleted, duration_ms=duration_ms)
