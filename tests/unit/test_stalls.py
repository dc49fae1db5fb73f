"""The stall monitor attributes waiting time: a blocked event loop shows as lag, a collection
as a GC pause, a slow acquire as a pool wait, and a slow second is logged with all three."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from cards_api.stalls import StallMonitor


@pytest.fixture(autouse=True)
def default_logging() -> Iterator[None]:
    """structlog's defaults while the test runs (another test may have configured a level
    that drops INFO lines), the configuration before it restored after."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


async def test_lag_gc_and_pool_waits_of_a_slow_second_are_logged_together() -> None:
    monitor = StallMonitor(log_over_ms=50)
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(0.05)
    garbage = [[i] for i in range(200_000)]  # something for a full collection to walk
    gc.collect()
    del garbage
    time.sleep(0.12)  # noqa: ASYNC251 - blocking the loop is the point: the next tick is late
    monitor.pool_wait(0.075)
    monitor.pool_wait(0.0002)
    monitor.commit(0.031)
    monitor.commit(0.002)
    monitor.key_lookup()
    monitor.index_load()
    monitor.index_load()

    # This monitor's line is the one with its pool wait: the app's own monitor, left running in
    # this event loop by an earlier test, sees the same lag and collection and logs its own.
    def ours(event: MutableMapping[str, Any]) -> bool:
        return event["event"] == "stall" and event.get("pool_wait_max_ms") == 75.0

    with capture_logs() as logs:
        async with asyncio.timeout(3):
            while not [e for e in logs if ours(e)]:  # noqa: ASYNC110 - until the second ends
                await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stall = next(e for e in logs if ours(e))
    assert stall["loop_lag_max_ms"] >= 100
    assert stall["gc_gen2"] >= 1
    assert stall["gc_max_ms"] > 0
    assert stall["pool_waits_over_1ms"] == 1
    assert stall["commit_max_ms"] == 31.0
    assert stall["key_lookups"] == 1
    assert stall["index_loads"] == 2
    assert gc.callbacks.count(monitor._on_gc) == 0  # removed when the monitor stops


async def test_quiet_seconds_are_not_logged_unless_asked() -> None:
    quiet = StallMonitor(log_over_ms=1000)
    every = StallMonitor(log_over_ms=0)
    with capture_logs() as logs:
        tasks = [asyncio.create_task(m.run()) for m in (quiet, every)]
        await asyncio.sleep(2.1)  # at least one whole second ends
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    stalls = [e for e in logs if e["event"] == "stall"]
    # Only the monitor logging every second wrote lines; the quiet one had no second over 1 s.
    assert 2 <= len(stalls) <= 3
