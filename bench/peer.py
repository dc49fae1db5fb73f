"""The peer: LangGraph's AsyncPostgresStore on the same database, in-process, 8 tasks.

R's nearest equivalent is getting 4 items by key from a tenant's namespace; B's is putting 4
items; S's is `asearch` with a query over the search tenant's 2,000 documents in a store with a
vector index using the same embedder (vector search only: the store has no lexical ranking). The
store has no HTTP, no authentication and no row-level security.

S's store is a database of its own on the same server, holding the search documents alone, its
statistics gathered after seeding: in the shared store, once `ANALYZE` had seen the 50,000 items
of R and the puts of B, LangGraph's search query took another plan and ran at 20 searches a
second instead of 180 (measured 2026-12-02), so the peer's figure depended on whether
autovacuum had got there yet.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.seed import CARDS_PER_TENANT, WORDS

TASKS = 8
WARM_UP_S = 1.0
"""Each run opens its store anew: its connections, their prepared statements and the first
queries are warmed this long first, untimed (the service's server is as warm)."""
_runs = itertools.count()


async def _seed(store: Any, tenants: int) -> None:
    from langgraph.store.base import PutOp

    rng = random.Random(7)
    for i in range(1, tenants + 1):
        await store.abatch(
            [
                PutOp(
                    ("tenants", str(i)),
                    f"card-{j}",
                    {
                        "title": f"card {j}",
                        "content": {"summary": " ".join(rng.choices(WORDS, k=60))},
                    },
                )
                for j in range(1, CARDS_PER_TENANT + 1)
            ]
        )


Step = Callable[[random.Random, str], Awaitable[None]]
"""One operation of a task: its random source and a key prefix unique to the task's call."""


async def _rate(step: Step, seconds: float) -> float:
    """Operations a second of TASKS concurrent tasks repeating `step` for `seconds`."""
    run = next(_runs)
    done = 0
    stop = time.monotonic() + seconds

    async def task(seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        while time.monotonic() < stop:
            await step(rng, f"{run}-{seed}-{done}")
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(task(s) for s in range(TASKS)))
    return done / (time.monotonic() - started)


async def _run(store: Any, op: str, tenants: int, seconds: float) -> float:
    from langgraph.store.base import GetOp, PutOp

    value = {"title": "Bench insight", "content": {"text": "x" * 500}}

    async def step(rng: random.Random, unique: str) -> None:
        namespace = ("tenants", str(rng.randint(1, tenants)))
        if op == "R":
            ops: list[Any] = [
                GetOp(namespace, f"card-{rng.randint(1, CARDS_PER_TENANT)}") for _ in range(4)
            ]
        else:  # B's keys are new in every call: each put is an insert
            ops = [PutOp(namespace, f"new-{unique}-{k}", value) for k in range(4)]
        await store.abatch(ops)

    return await _rate(step, seconds)


async def _execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _store(dsn: str, index: dict[str, Any] | None = None) -> Any:
    from langgraph.store.postgres import AsyncPostgresStore

    pool = {"min_size": TASKS, "max_size": TASKS}
    return AsyncPostgresStore.from_conn_string(dsn, pool_config=pool, index=index)  # type: ignore[arg-type]


SEARCH_DATABASE = "cards_peer_search"


def _database(dsn: str, name: str) -> str:
    """`dsn` with another database name (the embedded server's URL names it in its path)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


class Peer:
    """The peer's stores, seeded once; `run` measures one run of one operation (R, B or S), so
    that the benchmark can drive the peer and the service in turn, run by run, and both see the
    same machine (its speed drifts within a run: CPU steal came and went by the minute)."""

    def __init__(self, dsn: str, *, tenants: int, documents: list[str], queries: list[str]):
        from cards_api.search.embedder import LocalEmbedder

        self.dsn = dsn
        self.search_dsn = _database(dsn, SEARCH_DATABASE)
        self.tenants = tenants
        self.documents = documents
        self.queries = queries
        self.embedder = LocalEmbedder()

    def _index(self) -> dict[str, Any]:
        embedder = self.embedder

        async def embed(texts: list[str]) -> list[list[float]]:
            return await asyncio.to_thread(embedder.embed_now, texts)

        return {"dims": embedder.dimension, "embed": embed, "fields": ["text"]}

    def seed(self) -> None:
        asyncio.run(self._seed())

    async def _seed(self) -> None:
        from langgraph.store.base import PutOp

        async with _store(self.dsn) as store:
            await store.setup()
            await _seed(store, self.tenants)
        if not self.documents:
            return
        await _execute(
            self.dsn,
            f"DROP DATABASE IF EXISTS {SEARCH_DATABASE}",
            f"CREATE DATABASE {SEARCH_DATABASE}",
        )
        await _execute(self.search_dsn, "CREATE EXTENSION IF NOT EXISTS vector")
        async with _store(self.search_dsn, self._index()) as store:
            await store.setup()
            for start in range(0, len(self.documents), 200):
                await store.abatch(
                    [
                        PutOp(("search",), f"doc-{start + k}", {"text": text})
                        for k, text in enumerate(self.documents[start : start + 200])
                    ]
                )
        await _execute(self.search_dsn, "ANALYZE")  # as autovacuum would have, in a store in use

    def run(self, op: str, seconds: float) -> float:
        """One run of `op`: operations a second over `seconds`, 8 tasks."""
        return asyncio.run(self._run(op, seconds))

    async def _run(self, op: str, seconds: float) -> float:
        if op != "S":
            async with _store(self.dsn) as store:
                await _run(store, op, self.tenants, WARM_UP_S)
                return await _run(store, op, self.tenants, seconds)
        async with _store(self.search_dsn, self._index()) as store:
            await self._search(store, WARM_UP_S)
            return await self._search(store, seconds)

    async def _search(self, store: Any, seconds: float) -> float:
        async def step(rng: random.Random, _: str) -> None:
            await store.asearch(("search",), query=rng.choice(self.queries), limit=10)

        return await _rate(step, seconds)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        name: version(name)
        for name in ("langgraph-checkpoint-postgres", "langgraph-checkpoint", "psycopg")
    }
