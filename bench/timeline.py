"""Second by second: the client's p99 beside what the server says it was doing.

wrk reports, for each wall-clock second of an open-loop run, how many requests ended and their
p99 (measured from when each was due). The API processes log, for each second, their worst
event-loop lag, GC pauses, pool waits, commits, key look-ups and search-index loads (`stall` lines,
CARDS_STALL_LOG_MS=0), every request with its own duration, and every purge. Put side by
side, a slow second names its cause: the request's own work (server p99 high), the process
(loop lag, GC), the pool, background work (index loads, embedding passes), or nothing the
server saw (the load generator, the machine).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson


def _epoch(timestamp: str) -> float:
    """A log line's ISO timestamp ("…Z") as seconds since the epoch."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * 0.99) - 1)] if ordered else 0.0


WORST_OF_WORKERS = ("loop_lag_max_ms", "gc_max_ms", "pool_wait_max_ms", "commit_max_ms")
SUMMED_OVER_WORKERS = ("key_lookups", "index_loads", "gc_gen2")


def server_seconds(log: Path, offset: int, since: float) -> dict[int, dict[str, Any]]:
    """Per second, from the API's log after byte `offset`: request p99 and the stall figures
    (the worst over worker processes; key look-ups and purges summed). Only requests that began
    after `since` (the start of this run), and only whole seconds after it, count: the previous
    run's queued requests end during this run's first second."""
    durations: dict[int, list[float]] = defaultdict(list)
    seconds: dict[int, dict[str, Any]] = defaultdict(dict)
    with log.open("rb") as file:
        file.seek(offset)
        for line in file:
            if not line.startswith(b"{"):
                continue
            event = orjson.loads(line)
            name = event.get("event")
            if name == "request":
                at = _epoch(event["timestamp"])
                if at - event["duration_ms"] / 1000 >= since:  # began within this run
                    durations[math.floor(at)].append(event["duration_ms"])
            elif name == "stall" and event["second"] >= since:  # a whole second of this run
                row = seconds[event["second"]]
                # (Figures a server of an older version did not log count as nothing.)
                for key in WORST_OF_WORKERS:
                    row[key] = max(row.get(key, 0.0), event.get(key, 0.0))
                for key in SUMMED_OVER_WORKERS:
                    row[key] = row.get(key, 0) + event.get(key, 0)
            elif name == "purged":
                row = seconds[math.floor(_epoch(event["timestamp"]))]
                row["purge_ms"] = row.get("purge_ms", 0.0) + event["duration_ms"]
            elif name == "cards_embedded":  # a background pass: every second it spanned
                ended = _epoch(event["timestamp"])
                first = math.floor(ended - event["duration_ms"] / 1000)
                for second in range(first, math.floor(ended) + 1):
                    seconds[second]["embedding_pass"] = True
    for second, values in durations.items():
        seconds[second]["server_p99_ms"] = _p99(values)
        seconds[second]["server_max_ms"] = max(values)
    return seconds


BUSY_BESIDE_PCT = 10.0
"""A process group beside the measured ones using this share of the machine's CPU in a second is
named as its cause, when nothing the server measured explains it."""


WRITES = frozenset({"U", "B", "C"})
"""The operations whose COMMIT waits for the disk: a read's COMMIT is one more round trip, as
slow as any other in a slow second, and is never named as a cause."""


def cause(row: dict[str, Any], target_ms: float, *, writes: bool = True) -> str:
    """The likeliest reason a second's client p99 exceeded `target_ms`.

    The client's p99 is split in two: the server's own p99 (from the first byte read to the
    response) and the rest, time before the server read the request or after it answered. The
    larger part is explained by the largest figure measured for it; a part no figure explains is
    named for where it was spent.
    """
    client = row["client_p99_ms"]
    if client <= target_ms:
        return ""
    inside = row.get("server_p99_ms", 0.0)
    outside = client - inside
    if inside >= outside:
        parts = {
            "pool wait": row.get("pool_wait_max_ms", 0.0),
            "GC pause": row.get("gc_max_ms", 0.0),
            "purge job": row.get("purge_ms", 0.0),
        }
        if writes:
            parts["a commit waiting on the disk (WAL flush)"] = row.get("commit_max_ms", 0.0)
        name, ms = max(parts.items(), key=lambda item: item[1])
        if ms >= inside / 2:
            return name
        if row.get("embedding_pass"):
            return "a background embedding pass"
        if row.get("index_loads", 0):
            return "search indexes counted or loaded in the background"
        return "the request's own work (database and Python, under the load)"
    parts = {
        "the load generator sent late (its thread was not running)": row.get(
            "loadgen_late_max_ms", 0.0
        ),
        "event-loop lag (the request waited to be read)": row.get("loop_lag_max_ms", 0.0),
    }
    if writes:  # the requests behind a stalled commit on its connection wait with it
        parts["queued behind a commit waiting on the disk"] = row.get("commit_max_ms", 0.0)
    # One request far slower than the rest holds up every later one on its connection, and is
    # too rare to move the server's p99: its slowest request of the second says so.
    parts["queued behind one slow request on its connection"] = row.get("server_max_ms", 0.0)
    name, ms = max(parts.items(), key=lambda item: item[1])
    if ms >= outside / 2:
        return name
    if row.get("steal_pct", 0.0) >= 5:
        return "CPU steal (the hypervisor ran someone else)"
    if row.get("autovacuum", 0):
        return "autovacuum"
    busy = {
        "PostgreSQL's background processes (checkpointer, writers)": row.get(
            "cpu_pg_background_pct", 0.0
        ),
        "another process on the machine": row.get("cpu_other_pct", 0.0),
    }
    name, pct = max(busy.items(), key=lambda item: item[1])
    if pct >= BUSY_BESIDE_PCT:
        return name
    if row.get("iowait_pct", 0.0) >= 5:
        return "I/O wait"
    if "server_max_ms" in row:  # no request of the second was that slow in the server
        return (
            "outside the server: on its connection behind requests answered in time, or in the "
            "kernel or the load generator"
        )
    return "queued behind the previous request on its connection, or in the kernel"


def merge(
    client: dict[str, list[float]],
    server: dict[int, dict[str, Any]],
    machine: dict[int, dict[str, Any]],
    target_ms: float,
    *,
    writes: bool = True,
) -> list[dict[str, Any]]:
    """One row per second of the run: the client's figures, the server's, and the cause."""
    rows = []
    for key in sorted(client, key=int):
        second = int(key)
        count, p99, worst, late = client[key]
        row: dict[str, Any] = {
            "second": second,
            "requests": int(count),
            "client_p99_ms": round(p99, 2),
            "client_max_ms": round(worst, 2),
            "loadgen_late_max_ms": round(late, 2),
            **server.get(second, {}),
            **machine.get(second, {}),
        }
        row["cause"] = cause(row, target_ms, writes=writes)
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    """The run's slow seconds and their causes, one line each (for the console and docs)."""
    slow = [row for row in rows if row["cause"]]
    if not slow:
        return f"    timeline: {len(rows)} s, no second over target"
    start = rows[0]["second"]
    lines = [f"    timeline: {len(slow)} of {len(rows)} s over target:"]
    for row in slow:
        lines.append(
            f"      +{row['second'] - start}s p99 {row['client_p99_ms']:.1f} ms "
            f"(server {row.get('server_p99_ms', 0):.1f}, max {row.get('server_max_ms', 0):.1f}, "
            f"lag {row.get('loop_lag_max_ms', 0):.1f}, "
            f"gc {row.get('gc_max_ms', 0):.1f}, pool {row.get('pool_wait_max_ms', 0):.1f}, "
            f"commit {row.get('commit_max_ms', 0):.1f}, "
            f"key look-ups {row.get('key_lookups', 0)}, "
            f"index loads {row.get('index_loads', 0)}; wrk late {row['loadgen_late_max_ms']:.1f}; "
            f"idle {row.get('idle_pct', '?')}%, "
            f"steal {row.get('steal_pct', '?')}%, autovacuum {row.get('autovacuum', '?')}, "
            f"checkpoint ended {row.get('checkpoint_ended', '?')}, "
            f"pg background {row.get('cpu_pg_background_pct', '?')}%, "
            f"other {row.get('cpu_other_pct', '?')}%): "
            f"{row['cause']}"
        )
    return "\n".join(lines)


PROCESS_GROUPS = ("api", "pg_backends", "pg_background", "loadgen", "other")


def process_group(cmdline: str) -> str:
    """Which part of the benchmark a process is, from its command line: PostgreSQL's backends
    (serving queries), its background processes (checkpointer, background and WAL writers,
    autovacuum: they set their titles to "postgres: <role>"), the API, wrk, or anything else."""
    if cmdline.startswith("postgres: "):
        role = cmdline.removeprefix("postgres: ")
        background = ("checkpointer", "background writer", "walwriter", "autovacuum")
        return "pg_background" if role.startswith(background) else "pg_backends"
    if cmdline.startswith("wrk") or " -m bench" in cmdline:
        return "loadgen"  # wrk, and the benchmark's own process (this sampler among it)
    if "cards-api" in cmdline or "multiprocessing" in cmdline:
        return "api"
    if "postgres" in cmdline.split(" ", 1)[0]:
        return "pg_backends"  # the postmaster
    return "other"


def process_ticks() -> dict[str, int]:
    """CPU ticks (user + system) used so far by the live processes of each group."""
    ticks = dict.fromkeys(PROCESS_GROUPS, 0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError, UnicodeDecodeError):
            continue  # gone meanwhile, or a kernel thread
        ticks[process_group(cmdline)] += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


class MachineSampler:
    """Once a second, in a thread: CPU busy / iowait / steal shares from /proc/stat, each
    process group's share of the machine's CPU (`process_group`), whether an autovacuum
    worker was running (pg_stat_activity), and whether a checkpoint ended (its last step
    flushes every file it wrote to disk, which a commit's WAL flush may wait behind)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.seconds: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MachineSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _cpu() -> list[int]:
        with open("/proc/stat") as stat:
            return [int(v) for v in stat.readline().split()[1:]]

    def _run(self) -> None:
        asyncio.run(self._sample())

    async def _sample(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        # One round trip a second for both (pg_stat_checkpointer: PostgreSQL 17 and later).
        query = (
            "SELECT (SELECT count(*) FROM pg_stat_activity"
            "        WHERE backend_type = 'autovacuum worker'),"
            "       (SELECT num_done FROM pg_stat_checkpointer)"
        )

        async def postgres() -> tuple[int, int]:
            """Autovacuum workers running, and checkpoints done since the server started."""
            row = await conn.fetchrow(query)
            assert row is not None  # scalar subqueries: always one row
            return int(row[0]), int(row[1])

        try:
            before, groups_before = self._cpu(), process_ticks()
            _, done_before = await postgres()
            while not self._stop.wait(1.0 - time.time() % 1.0):
                now, groups = self._cpu(), process_ticks()
                delta = [b - a for a, b in zip(before, now, strict=True)]
                total = sum(delta) or 1
                # A process that ended within the second drops out of its group's sum: a
                # negative share is clipped, not reported.
                shares = {
                    f"cpu_{group}_pct": round(
                        max(0.0, 100 * (groups[group] - groups_before[group]) / total), 1
                    )
                    for group in PROCESS_GROUPS
                }
                before, groups_before = now, groups
                autovacuum, done = await postgres()
                ended, done_before = done - done_before, done
                # user nice system idle iowait irq softirq steal ...
                self.seconds[math.floor(time.time()) - 1] = {
                    "idle_pct": round(100 * delta[3] / total, 1),
                    "iowait_pct": round(100 * delta[4] / total, 1),
                    "steal_pct": round(100 * delta[7] / total, 1),
                    "autovacuum": autovacuum,
                    "checkpoint_ended": ended,
                    **shares,
                }
        finally:
            await conn.close()
