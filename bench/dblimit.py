"""The database's own limit: pgbench running, per operation, the SQL the service runs.

Scripts are assembled from the service's own statements (`cards_api.db.queries`), with each
`$n` parameter replaced by a pgbench expression naming seeded rows, and run with prepared
statements, as the API's role (row-level security on), by 8 clients. As in the service, a
request's API key is not looked up: the service's key cache answers (see keycache.py).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
from pathlib import Path

from bench.seed import CARDS_PER_TENANT, WORDS, card_sql, tenant_sql
from cards_api.db.queries import cards as cards_q
from cards_api.db.queries import idempotency as idempotency_q
from cards_api.db.queries import search as search_q
from cards_api.db.queries import usage as usage_q
from cards_api.db.queries.tenancy import SET_TENANT
from cards_api.db.roles import Roles, login_url
from cards_api.search.embedder import LOCAL_NAME

CLIENTS = 8


def bind(sql: str, *values: str) -> str:
    """Put pgbench expressions where the service passes parameters `$1`, `$2`, ..."""

    def value(match: re.Match[str]) -> str:
        return f"({values[int(match.group(1)) - 1]})"

    return re.sub(r"\$(\d+)", value, sql.strip()).replace("\n", " ") + ";"


def _transaction(tenants: int, *statements: str, sets: str = "", before: str = "") -> str:
    lines = [f"\\set t random(1, {tenants})", *filter(None, sets.splitlines())]
    lines += [*filter(None, [before]), "BEGIN;", bind(SET_TENANT, tenant_sql()), *statements]
    lines += ["COMMIT;"]
    return "\n".join(lines) + "\n"


def _one_statement(tenants: int, statement: str, *, sets: str = "") -> str:
    """A read the service sends alone: a function binding its tenant itself (revision 0010)."""
    lines = [f"\\set t random(1, {tenants})", *filter(None, sets.splitlines()), statement]
    return "\n".join(lines) + "\n"


def scripts(tenants: int) -> dict[str, str]:
    tenant = f"{tenant_sql()}::uuid"
    cards = [card_sql(f"c{n}") for n in range(1, 5)]
    card_sets = "\n".join(f"\\set c{n} random(1, {CARDS_PER_TENANT})" for n in range(1, 5))
    batch_json = (
        "json_build_array("
        + ", ".join(
            f"json_build_object('id', CAST(:b{n} AS text), 'card_type', 'insight', "
            f"'title', 'Bench insight {n}', "
            "'content', json_build_object('text', repeat('x', CAST(:len AS int))), "
            "'tags', json_build_array('bench'), 'external_ref', NULL)"
            for n in range(1, 5)
        )
        + ")::text"
    )
    words = "ARRAY[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    key = "'pgbench-' || CAST(:client_id AS text) || '-' || CAST(:k AS text)"
    return {
        "R": _one_statement(
            tenants,
            bind(
                cards_q.BY_IDS,
                tenant,
                "ARRAY[" + ", ".join(cards) + "]",
                "NULL::text[]",
                "NULL::text[]",
            ),
            sets=card_sets,
        ),
        "U": _transaction(
            tenants,
            bind(
                usage_q.TRACK_USAGE,
                tenant,
                card_sql("c1"),
                "CASE WHEN CAST(:r AS int) = 1 THEN 'pg-' || CAST(:k AS text) ELSE 'pg-repeat' END",
                "'bench_run'",
                "NULL::text",
            ),
            sets="\\set c1 random(1, 50)\n\\set r random(1, 2)\n\\set k random(1, 2000000000)",
        ),
        "B": _transaction(
            tenants,
            bind(
                idempotency_q.RESERVE,
                tenant,
                key,
                "sha256(convert_to(" + key + ", 'UTF8'))",
                "86400",
            ),
            # The cards and their vectors, as the service stores them (values do not matter).
            bind(
                cards_q.UPSERT_BATCH_WITH_VECTORS,
                tenant,
                batch_json,
                f"'{LOCAL_NAME}'",
                "ARRAY["
                + ", ".join(["CAST(array_fill(CAST(0.0625 AS float4), ARRAY[256]) AS vector)"] * 4)
                + "]",
            ),
            bind(
                idempotency_q.COMPLETE,
                tenant,
                key,
                "201",
                "convert_to(repeat('r', 2400), 'UTF8')",
            ),
            sets="\\set k random(1, 2000000000)\n\\set len random(300, 800)",
            # The batch's card ids, drawn first (the vectors are matched to the cards by id).
            before="SELECT "
            + ", ".join(f"gen_random_uuid() AS b{n}" for n in range(1, 5))
            + " \\gset",
        ),
        "Q": _transaction(
            tenants,
            bind(
                search_q.text_sql(ids=False, card_types=False, tags=False),
                tenant,
                f"({words})[CAST(:w AS int)]",  # one plain word: a valid tsquery as it is
                f"({words})[CAST(:w AS int)]",
                "10",
            ),
            sets=f"\\set w random(1, {len(WORDS)})",
        ),
        "L": _transaction(
            tenants,
            bind(cards_q.list_page_sql(card_type=False, tag=False, after=False), tenant, "51"),
        ),
    }


def pgbench_tps(pgbench: Path, dsn: str, script: Path, seconds: float) -> float:
    env = dict(os.environ)
    result = subprocess.run(
        [
            str(pgbench), "-n", "-M", "prepared", "-c", str(CLIENTS), "-j", "2",
            "-T", str(int(seconds)), "-f", str(script), dsn,
        ],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    if result.returncode != 0 or match is None or (failed is not None and failed.group(1) != "0"):
        raise RuntimeError(f"pgbench failed:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1))


def db_limits(
    pgbench: Path,
    dsn: str,
    workdir: Path,
    *,
    tenants: int,
    ops: list[str],
    seconds: float,
    reps: int,
) -> dict[str, float]:
    """Median transactions/s of each operation over `reps` runs."""
    limits = {}
    for op, text in scripts(tenants).items():
        if op not in ops:
            continue
        path = workdir / f"pgbench-{op}.sql"
        path.write_text(text)
        # As the API's own login role, bound by row-level security like every request.
        app_dsn = login_url(dsn, Roles.for_database(dsn).app, None)
        runs = [pgbench_tps(pgbench, app_dsn, path, seconds) for _ in range(reps)]
        limits[op] = statistics.median(runs)
        print(
            f"  db limit {op}: {limits[op]:,.0f} tps (runs: {', '.join(f'{r:,.0f}' for r in runs)})"
        )
    return limits


def speed_reference(pgbench: Path, dsn: str, workdir: Path, *, seconds: float) -> float:
    """pgbench `SELECT 1` with 8 clients: how fast this machine is today, so that absolute
    figures of runs on different days (or machines) can be told apart from code changes."""
    path = workdir / "pgbench-select1.sql"
    path.write_text("SELECT 1;\n")
    tps = pgbench_tps(pgbench, dsn, path, seconds)
    print(f"  speed reference: pgbench SELECT 1 {tps:,.0f} tps")
    return tps
