"""`python -m bench.compare OP REV [REV ...] [--data DIR]`: CPU per request of git revisions.

Each revision's `src/` is exported and served in turn by a one-worker `cards-api serve` on
one seeded database (`WORKTREE` serves the working tree), with the same settings as the
benchmark's server; wrk drives OP at 8 connections, and the API's processes' CPU time and
PostgreSQL's over the run are divided by the requests answered. On a shared two-core machine
saturation throughput drifts by ±15% between minutes; CPU per request drifts less, and the
rounds alternate so that a drift falls on every revision alike. A change is worth keeping
when it wins in every round, not in the medians alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench import http, seed, timeline
from cards_api.db import migrate
from cards_api.db.embedded import start_embedded

WORKTREE = "WORKTREE"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds so far of the API's processes and of PostgreSQL's (backends and background),
    counted by the timeline's process groups (one server runs at a time here)."""
    ticks = timeline.process_ticks()
    return ticks["api"] / TICKS, (ticks["pg_backends"] + ticks["pg_background"]) / TICKS


def export(revision: str, into: Path) -> Path:
    """`revision`'s src/ as a directory to put first on PYTHONPATH."""
    if revision == WORKTREE:
        return Path(__file__).resolve().parent.parent / "src"
    target = into / revision.replace("/", "_")
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", revision, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def measure(
    dsn: str, source: Path, op: str, data: Path, seconds: int, log: Path
) -> tuple[float, float, float]:
    """One round: requests/s, and the API's and PostgreSQL's CPU µs per request."""
    os.environ["PYTHONPATH"] = str(source)
    server = http.start_api(dsn, 1, log)
    try:
        http.wrk(server.url, op, data, connections=8, seconds=2)  # warm: keys, indexes
        api_before, pg_before = cpu_seconds()
        outcome = http.wrk(server.url, op, data, connections=8, seconds=seconds)
        api_after, pg_after = cpu_seconds()
    finally:
        server.stop()
        os.environ.pop("PYTHONPATH", None)
    requests = outcome["requests"]
    return (
        outcome["rps"],
        (api_after - api_before) / requests * 1e6,
        (pg_after - pg_before) / requests * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", help="R, U, B, Q, L, S or C")
    parser.add_argument("revisions", nargs="+", help=f"git revisions, or {WORKTREE}")
    parser.add_argument("--data", type=Path, help="a seeded data folder (default: seed one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cards-compare-"))
    database = start_embedded(args.data or workdir / "data")
    folder = args.data.parent if args.data else workdir
    if not args.data:
        migrate.upgrade(database.dsn)
        asyncio.run(
            seed.seed(
                database.dsn, tenants=1000, out=folder / "tenants.txt",
                search_out=folder / "search.txt",
            )
        )  # fmt: skip
        http.embed_backlog(database.dsn)
    data = folder / ("search.txt" if args.op in ("S", "C") else "tenants.txt")
    sources = {revision: export(revision, workdir) for revision in args.revisions}
    rounds: dict[str, list[tuple[float, float, float]]] = {revision: [] for revision in sources}
    for _ in range(args.rounds):
        for revision, source in sources.items():
            log = workdir / f"api-{revision.replace('/', '_')}.log"
            figures = measure(database.dsn, source, args.op, data, args.seconds, log)
            rounds[revision].append(figures)
            print(f"{revision}: {figures[0]:.0f} req/s, API {figures[1]:.0f} µs, "
                  f"PostgreSQL {figures[2]:.0f} µs a request", flush=True)  # fmt: skip
    print(f"\n{args.op}, medians of {args.rounds} rounds (one worker, 8 connections):")
    for revision, measured in rounds.items():
        rps, api, postgres = (statistics.median(column) for column in zip(*measured, strict=True))
        print(f"  {revision}: {rps:.0f} req/s, API {api:.0f} µs, PostgreSQL {postgres:.0f} µs")


if __name__ == "__main__":
    main()
