"""Periodic clean-up in every API process: expired idempotency records and contexts.

Each job deletes in small batches through a function granted to the app role (it runs as the
maintenance role). Jitter keeps several processes from running in step.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from cards_api import idempotency
from cards_api.db.queries import contexts as contexts_q

log = structlog.get_logger("cards_api.housekeeping")

EVERY_SECONDS = 300.0
BATCH = 1000


async def purge_contexts(pool: asyncpg.Pool, *, batch: int = BATCH) -> int:
    total = 0
    while True:
        async with pool.acquire() as conn:
            deleted = await contexts_q.purge_expired(conn, batch=batch)
        total += deleted
        if deleted < batch:
            return total


JOBS: dict[str, Callable[[asyncpg.Pool], Awaitable[int]]] = {
    "idempotency_records": idempotency.purge_expired,
    "contexts": purge_contexts,
}


async def run_once(pool: asyncpg.Pool) -> dict[str, int]:
    """Run every job once; what each deleted."""
    return {name: await job(pool) for name, job in JOBS.items()}


async def purge_forever(pool: asyncpg.Pool, *, every_seconds: float = EVERY_SECONDS) -> None:
    while True:
        await asyncio.sleep(every_seconds * random.uniform(0.5, 1.5))  # noqa: S311
        for name, job in JOBS.items():
            try:
                deleted = await job(pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("purge_failed", job=name, error=type(exc).__name__)
            else:
                if deleted:
                    log.info("purged", job=name, deleted=deleted)
