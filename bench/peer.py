"""The peer: LangGraph's AsyncPostgresStore on the same database, in-process, 8 tasks.

R's nearest equivalent is getting 4 items by key from a tenant's namespace; B's is putting 4
items; S's is `asearch` with a query over the search tenant's 2,000 documents in a store with a
vector index using the same embedder (vector search only: the store has no lexical ranking). The
store has no HTTP, no authentication and no row-level security.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

from bench.seed import CARDS_PER_TENANT, WORDS

TASKS = 8


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


async def _run(store: Any, op: str, tenants: int, seconds: float) -> float:
    from langgraph.store.base import GetOp, PutOp

    value = {"title": "Bench insight", "content": {"text": "x" * 500}}
    done = 0
    stop = time.monotonic() + seconds

    async def worker(seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        n = 0
        while time.monotonic() < stop:
            namespace = ("tenants", str(rng.randint(1, tenants)))
            if op == "R":
                ops: list[Any] = [
                    GetOp(namespace, f"card-{rng.randint(1, CARDS_PER_TENANT)}") for _ in range(4)
                ]
            else:
                n += 1
                ops = [PutOp(namespace, f"new-{seed}-{n}-{k}", value) for k in range(4)]
            await store.abatch(ops)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(s) for s in range(TASKS)))
    return done / (time.monotonic() - started)


async def _measure(dsn: str, tenants: int, seconds: float, reps: int) -> dict[str, float]:
    from langgraph.store.postgres import AsyncPostgresStore

    pool = {"min_size": TASKS, "max_size": TASKS}
    async with AsyncPostgresStore.from_conn_string(dsn, pool_config=pool) as store:  # type: ignore[arg-type]
        await store.setup()
        await _seed(store, tenants)
        result = {}
        for op in ("R", "B"):
            runs = [await _run(store, op, tenants, seconds) for _ in range(reps)]
            result[op] = statistics.median(runs)
            listed = ", ".join(f"{r:,.0f}" for r in runs)
            print(f"  peer {op}: {result[op]:,.0f} ops/s (runs: {listed})")
        return result


def peer_ops(dsn: str, *, tenants: int, seconds: float, reps: int) -> dict[str, float]:
    return asyncio.run(_measure(dsn, tenants, seconds, reps))


async def _measure_search(
    dsn: str, documents: list[str], queries: list[str], seconds: float, reps: int
) -> float:
    from langgraph.store.postgres import AsyncPostgresStore

    from cards_api.search.embedder import LocalEmbedder

    embedder = LocalEmbedder()

    async def embed(texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(embedder.embed_now, texts)

    pool = {"min_size": TASKS, "max_size": TASKS}
    index = {"dims": embedder.dimension, "embed": embed, "fields": ["text"]}
    async with AsyncPostgresStore.from_conn_string(dsn, pool_config=pool, index=index) as store:  # type: ignore[arg-type]
        await store.setup()
        from langgraph.store.base import PutOp

        for start in range(0, len(documents), 200):
            await store.abatch(
                [
                    PutOp(("search",), f"doc-{start + k}", {"text": text})
                    for k, text in enumerate(documents[start : start + 200])
                ]
            )

        async def run() -> float:
            done = 0
            stop = time.monotonic() + seconds

            async def worker(seed: int) -> None:
                nonlocal done
                rng = random.Random(seed)
                while time.monotonic() < stop:
                    await store.asearch(("search",), query=rng.choice(queries), limit=10)
                    done += 1

            started = time.monotonic()
            await asyncio.gather(*(worker(s) for s in range(TASKS)))
            return done / (time.monotonic() - started)

        runs = [await run() for _ in range(reps)]
        result = statistics.median(runs)
        print(f"  peer S: {result:,.0f} ops/s (runs: {', '.join(f'{r:,.0f}' for r in runs)})")
        return result


def peer_search(
    dsn: str, *, documents: list[str], queries: list[str], seconds: float, reps: int
) -> float:
    return asyncio.run(_measure_search(dsn, documents, queries, seconds, reps))


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        name: version(name)
        for name in ("langgraph-checkpoint-postgres", "langgraph-checkpoint", "psycopg")
    }
