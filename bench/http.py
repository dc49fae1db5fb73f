"""Cards API over HTTP, driven by wrk (C, so the load generator leaves the server its CPU)."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import timeline

LUA = Path(__file__).parent / "wrk" / "cards.lua"
CARDS_API = Path(sys.executable).parent / "cards-api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(dsn: str, **settings: str) -> dict[str, str]:
    """This process's environment for a `cards-api` command on `dsn`: none of the caller's own
    Cards API settings, only `settings`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CARDS_") and k != "DATABASE_URL"
    }
    return {**env, "DATABASE_URL": dsn, **settings}


@dataclass
class ApiServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


BENCH_RATE_LIMIT = 100_000
"""Requests a second per key and process in the benchmark (settings' maximum)."""


def start_api(dsn: str, workers: int, logs: Path, **settings: str) -> ApiServer:
    """`cards-api serve` as in production: API keys, metrics, JSON logs (to a file); `settings`
    are further `CARDS_…` variables."""
    port = free_port()
    # Every second's stall figures are logged (CARDS_STALL_LOG_MS=0) for the timeline. The
    # rate limiter stays on (its check is part of every request's cost) with a limit no
    # operation reaches: S and C send every request as one tenant's key, and at the default
    # 500 a second per process a faster search would be answered 429 (and fail the run) rather
    # than measured.
    env = service_env(
        dsn,
        CARDS_LOG_FORMAT="json",
        CARDS_LOG_LEVEL="INFO",
        CARDS_STALL_LOG_MS="0",
        CARDS_RATE_LIMIT=str(BENCH_RATE_LIMIT),
        **settings,
    )
    with logs.open("wb") as log:
        process = subprocess.Popen(
            [str(CARDS_API), "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return ApiServer(process, url, logs)
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"cards-api did not start; see {logs}")


def no_embedder() -> dict[str, str]:
    """Settings under which batch writes compute and store no vector: a remote embedder at a
    local port nothing listens on. Each batch's embedding fails at once (connection refused,
    no retry) and the write succeeds without vectors, as the service does whenever its embedder
    is down. What this baseline still does that a write without embeddings would not: the failed
    connection attempt (~0.6 ms of CPU a batch, in-process, against ~1 ms for the local
    embedding of a bench batch's 4 cards), and in the background each worker's retry scan for
    pending cards every 10 s (~0.2 s of database time on the bench's data). Both make B without
    embeddings look slower than it is, so the ratio reads higher than it is, by up to ~8% of a
    batch's CPU."""
    return {
        "CARDS_EMBEDDINGS_URL": f"http://127.0.0.1:{free_port()}/v1",
        "CARDS_EMBEDDINGS_MODEL": "none",
        "CARDS_EMBEDDINGS_DIMENSION": "256",
    }


def embed_backlog(dsn: str) -> None:
    """`cards-api reindex`: embed what was written behind the service's back (pgbench's and the
    peer's cards), so that no background embedding pass competes with the measured requests."""
    started = time.monotonic()
    subprocess.run([str(CARDS_API), "reindex"], env=service_env(dsn), check=True)
    print(f"  embedded the backlog in {time.monotonic() - started:.0f} s (cards-api reindex)")


OPEN_LOOP_START_MS = 2000
"""An open-loop run's first requests are due this long after wrk starts its threads, when every
thread has read the data file (`bench/wrk/cards.lua`); the run lasts as much longer."""


def wrk(
    url: str, op: str, data: Path, *, connections: int, seconds: float, rate: float = 0
) -> dict[str, Any]:
    threads = connections if rate else min(2, connections)
    start_ms = OPEN_LOOP_START_MS if rate else 0
    env = {
        **os.environ,
        "BENCH_OP": op,
        "BENCH_DATA": str(data),
        "BENCH_RATE": str(rate),
        "BENCH_START_MS": str(start_ms),
    }
    result = subprocess.run(
        [
            "wrk", "-t", str(threads), "-c", str(connections),
            "-d", f"{int(seconds + start_ms / 1000)}s",
            "--timeout", "10s", "-s", str(LUA), url,
        ],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    line = next((ln for ln in lines if ln.startswith("BENCH_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed:\n{result.stdout}\n{result.stderr}")
    outcome: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
    seconds = next((ln for ln in lines if ln.startswith("BENCH_TIMELINE ")), None)
    outcome["timeline"] = json.loads(seconds.removeprefix("BENCH_TIMELINE ")) if seconds else {}
    outcome["rps"] = outcome["requests"] / (outcome["duration_us"] / 1e6)
    bad = sum(outcome[k] for k in outcome if k.startswith("errors_")) + outcome["failed"]
    if bad:
        raise RuntimeError(f"{op}: {bad} failed requests under load: {outcome}")
    return outcome


def saturation(
    url: str, op: str, data: Path, *, connections: int, seconds: float, reps: int
) -> float:
    runs = [
        wrk(url, op, data, connections=connections, seconds=seconds)["rps"] for _ in range(reps)
    ]
    print(f"  http {op} @{connections}: {statistics.median(runs):,.0f} req/s "
          f"(runs: {', '.join(f'{r:,.0f}' for r in runs)})")  # fmt: skip
    return statistics.median(runs)


OPEN_LOOP_RATE_PER_CONNECTION = 250


def open_loop_connections(total_rate: float) -> int:
    """How many connections carry an open-loop run: at least 4, and enough that none is sent more
    than OPEN_LOOP_RATE_PER_CONNECTION requests a second. HTTP/1.1 sends one request at a time
    on a connection, so a request due while the previous one is still out waits behind it: at R's
    half load on a faster day (1,920/s over 4 connections, one every 2 ms each) the timeline put
    13 of 27 slow seconds there, a client p99 of 18-38 ms against a server p99 of 2.5-4.6 ms. A
    client sending that many requests would hold as many connections. Not many more: each is a
    wrk thread, and on two cores 32 of them added tens of milliseconds to the tail by themselves
    (docs/performance.md)."""
    return max(4, math.ceil(total_rate / OPEN_LOOP_RATE_PER_CONNECTION))


def open_loop(
    server: ApiServer,
    op: str,
    data: Path,
    *,
    total_rate: float,
    seconds: float,
    target_ms: float,
    dsn: str,
) -> dict[str, Any]:
    """Latency at a fixed arrival rate, spread over `open_loop_connections` connections (one
    wrk thread each), with its per-second timeline beside the server's and the machine's account
    of those seconds."""
    connections = open_loop_connections(total_rate)
    time.sleep(1.0)  # the previous run's queued requests finish first
    offset = server.log.stat().st_size
    started = time.time()
    with timeline.MachineSampler(dsn) as machine:
        outcome = wrk(
            server.url, op, data, connections=connections, seconds=seconds,
            rate=total_rate / connections,
        )  # fmt: skip
        time.sleep(1.2)  # the workers log each second once it has ended
    rows = timeline.merge(
        outcome.pop("timeline"),
        timeline.server_seconds(server.log, offset, started),
        machine.seconds,
        target_ms,
        writes=op in timeline.WRITES,
    )
    outcome["timeline"] = rows
    outcome["connections"] = connections
    quantiles = ", ".join(f"{q} {outcome[q + '_ms']:.2f}" for q in ("p50", "p95", "p99", "max"))
    print(f"  http {op} @{total_rate:,.0f}/s: {quantiles} ms")
    print(timeline.summary(rows))
    return outcome
