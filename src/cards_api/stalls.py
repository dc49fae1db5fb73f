"""Where a slow second came from: event-loop lag, garbage-collector pauses, waits for a pool
connection and key look-ups, per process and per second.

A request's latency has two parts: its own work and the time it waited for the process (an
event loop busy with someone else, a collection, no free connection). The request log shows the
first; this module measures the second, so that a latency spike can be attributed instead of
guessed at. Every process runs one `StallMonitor`:

- **event-loop lag**: a task asks to wake every 10 ms and measures how late it woke;
- **GC pauses**: `gc.callbacks` time each collection of the generational collector;
- **pool waits**: the request transaction and the key look-up report how long acquiring a
  connection took (`pool_wait`);
- **commits**: how long the request transaction's COMMIT took: a write waits there for its WAL
  to reach the disk, and a disk that stalls shows here and nowhere else in the server;
- **key look-ups**: API keys not in the cache, each a short transaction of its own;
- **search index loads**: the background loader's transactions (a tenant counted or loaded,
  `search/indexes.py`), work beside the requests that a slow second may be owed to.

Each second's worst lag and GC pause go to Prometheus histograms
(`cards_api_event_loop_lag_seconds`, `cards_api_gc_pause_seconds`). A second in which the loop
lagged, a collection paused or a pool wait lasted at least `CARDS_STALL_LOG_MS` is also logged
as one `stall` line with all the figures of that second (0 logs every second with traffic:
what `make bench` does to draw its timeline). The monitor wakes 100 times a second, about 1 ms
of CPU per second.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from dataclasses import dataclass, fields
from typing import Any, Final

import asyncpg
import structlog

from cards_api import metrics
from cards_api.db.types import Connection

TICK_S: Final = 0.01

LOGGER: Final = "cards_api.stalls"


@dataclass(slots=True)
class Second:
    """What one wall-clock second of one process looked like (milliseconds, counts)."""

    loop_lag_max_ms: float = 0.0
    gc_ms: float = 0.0
    gc_max_ms: float = 0.0
    gc_gen2: int = 0
    pool_wait_max_ms: float = 0.0
    pool_waits_over_1ms: int = 0
    commit_max_ms: float = 0.0
    key_lookups: int = 0
    index_loads: int = 0

    def worst_ms(self) -> float:
        return max(self.loop_lag_max_ms, self.gc_max_ms, self.pool_wait_max_ms, self.commit_max_ms)

    def as_log(self) -> dict[str, Any]:
        return {f.name: _rounded(getattr(self, f.name)) for f in fields(self)}


def _rounded(value: float) -> float:
    return round(value, 2) if isinstance(value, float) else value


class StallMonitor:
    """Per-process stall accounting; `current` is the second being filled."""

    def __init__(self, *, log_over_ms: float) -> None:
        self.log_over_ms = log_over_ms
        self.current = Second()
        self._second = math.floor(time.time())
        self._gc_started = 0.0

    # --- what the request path reports ----------------------------------------------------

    def pool_wait(self, seconds: float) -> None:
        ms = seconds * 1000
        if ms > self.current.pool_wait_max_ms:
            self.current.pool_wait_max_ms = ms
        if ms >= 1.0:
            self.current.pool_waits_over_1ms += 1

    def commit(self, seconds: float) -> None:
        ms = seconds * 1000
        if ms > self.current.commit_max_ms:
            self.current.commit_max_ms = ms

    def key_lookup(self) -> None:
        self.current.key_lookups += 1

    def index_load(self) -> None:
        self.current.index_loads += 1

    # --- the collector's callbacks --------------------------------------------------------

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        ms = (time.perf_counter() - self._gc_started) * 1000
        second = self.current
        second.gc_ms += ms
        if ms > second.gc_max_ms:
            second.gc_max_ms = ms
        if info.get("generation") == 2:
            second.gc_gen2 += 1

    # --- the loop -------------------------------------------------------------------------

    def _roll(self, now: float) -> None:
        """Close the second that ended: metrics always, a log line when it was slow."""
        second, self.current = self.current, Second()
        at = self._second
        self._second = math.floor(now)
        metrics.observe_stalls(
            loop_lag_s=second.loop_lag_max_ms / 1000, gc_pause_s=second.gc_max_ms / 1000
        )
        if second.worst_ms() >= self.log_over_ms:
            # Looked up each time (once a second at most): follows the logging configuration
            # in force, as a module-level cached logger would not.
            structlog.get_logger(LOGGER).info("stall", second=at, **second.as_log())

    async def run(self) -> None:
        gc.callbacks.append(self._on_gc)
        try:
            while True:
                asked = time.perf_counter()
                await asyncio.sleep(TICK_S)
                lag_ms = (time.perf_counter() - asked - TICK_S) * 1000
                if lag_ms > self.current.loop_lag_max_ms:
                    self.current.loop_lag_max_ms = lag_ms
                now = time.time()
                if math.floor(now) != self._second:
                    self._roll(now)
        finally:
            gc.callbacks.remove(self._on_gc)


MONITOR: Final = StallMonitor(log_over_ms=50.0)
"""The process's monitor: the request path reports to it, the app's lifespan runs it."""


class _TimedAcquire:
    __slots__ = ("_acquiring",)

    def __init__(self, pool: asyncpg.Pool, *, timeout: float) -> None:
        # With a connection idle, nothing can be waited for: no timeout, which asyncpg would
        # arm twice (a timer for the acquire, and another for the release, which inherits it).
        # Two timers were ~15% of a retrieve's pool and database CPU (docs/performance.md).
        idle = pool.get_idle_size() > 0
        self._acquiring = pool.acquire() if idle else pool.acquire(timeout=timeout)

    async def __aenter__(self) -> Connection:
        asked = time.perf_counter()
        conn: Connection = await self._acquiring.__aenter__()
        MONITOR.pool_wait(time.perf_counter() - asked)
        return conn

    async def __aexit__(self, *exc: object) -> None:
        await self._acquiring.__aexit__(*exc)


def acquire(pool: asyncpg.Pool, *, timeout: float) -> _TimedAcquire:
    """`pool.acquire(timeout=…)` that reports how long the connection took to come: how the
    request path (its transaction, a key look-up) takes a connection from the pool."""
    return _TimedAcquire(pool, timeout=timeout)


def commit(seconds: float) -> None:
    MONITOR.commit(seconds)


def key_lookup() -> None:
    MONITOR.key_lookup()


def index_load() -> None:
    MONITOR.index_load()


async def monitor_forever(log_over_ms: float) -> None:
    MONITOR.log_over_ms = log_over_ms
    await MONITOR.run()
