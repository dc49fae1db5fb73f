"""The benchmark's machine sampler sees what PostgreSQL did in a second: a checkpoint that ended
in it is what a write's slow commit is weighed against (docs/performance.md)."""

from __future__ import annotations

import asyncio

import asyncpg
from bench import timeline


async def test_a_checkpoint_shows_in_the_second_it_ended(
    database_url: str, owner_pool: asyncpg.Pool
) -> None:
    with timeline.MachineSampler(database_url) as sampler:
        await asyncio.sleep(1.5)  # a whole second sampled before it
        await owner_pool.execute("CHECKPOINT")
        await asyncio.sleep(2.2)  # the second it ended in, sampled after it
    seconds = sorted(sampler.seconds.items())
    assert len(seconds) >= 3
    ended = [row["checkpoint_ended"] for _, row in seconds]
    assert sum(ended) >= 1
    # Counted per second, not since the database started: the other seconds show none (a timed
    # checkpoint may end in one of them too).
    assert ended.count(0) >= len(ended) - 2
    assert all(0 <= row["idle_pct"] <= 100 for _, row in seconds)
