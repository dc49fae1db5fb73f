"""`python -m bench.profile OP [DATA_DIR]`: where a worker's CPU goes under load, by py-spy.

Starts `cards-api serve` with one worker on a seeded bench database, drives OP with wrk at 8
connections, samples the worker for a few seconds and prints the functions holding the most
samples (own time and inclusive time). Used to find the overheads listed in
docs/performance.md.
"""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import http, seed
from cards_api.db import migrate
from cards_api.db.embedded import start_embedded


def top(raw: Path, limit: int = 30) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].split(":")[0] for f in stack.split(";")
        ]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "own time:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(limit)]
    lines += ["inclusive:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(limit)]
    return "\n".join(lines)


def main() -> None:
    op = sys.argv[1] if len(sys.argv) > 1 else "R"
    workdir = Path(tempfile.mkdtemp(prefix="cards-profile-"))
    database = start_embedded(Path(sys.argv[2]) if len(sys.argv) > 2 else workdir / "data")
    data = workdir / "tenants.txt"
    if len(sys.argv) <= 2:
        migrate.upgrade(database.dsn)
        asyncio.run(
            seed.seed(database.dsn, tenants=1000, out=data, search_out=workdir / "search.txt")
        )
    else:
        data = Path(sys.argv[2]).parent / ("search.txt" if op in ("S", "C") else "tenants.txt")
    server = http.start_api(database.dsn, 1, workdir / "api.log")
    try:
        env = {**os.environ, "BENCH_OP": op, "BENCH_DATA": str(data), "BENCH_RATE": "0"}
        load = subprocess.Popen(
            ["wrk", "-t", "2", "-c", "8", "-d", "14s", "-s", str(http.LUA), server.url],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(3)
        raw = workdir / "profile.txt"
        subprocess.run(
            [
                str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                str(server.process.pid), "--duration", "8", "--rate", "250", "--format", "raw",
                "--output", str(raw), "--nonblocking",
            ],
            check=True, capture_output=True,
        )  # fmt: skip
        out, _ = load.communicate()
        print(next(ln for ln in out.splitlines() if "Requests/sec" in ln))
        print(top(raw))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
