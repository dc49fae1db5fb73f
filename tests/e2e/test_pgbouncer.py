"""Behind PgBouncer in transaction mode (Debian's, 1.18): two API workers serve the seed's flow
through the pooler — no session state between transactions, no named prepared statements, the
timeouts as the app role's own defaults — while revocation notices arrive over the direct URL
(LISTEN cannot pass a transaction pooler)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from cards_api import auth
from cards_api.db.roles import Roles
from tests.e2e.conftest import clean_env, free_port, start_server, wait_until
from tests.support import SEED_CARDS, issue_tenant
from tests.tools import require_tool

pytestmark = pytest.mark.e2e


def _socket_dir(dsn: str) -> str:
    return parse_qs(urlsplit(dsn).query)["host"][0]


@pytest.fixture
def pgbouncer(database_url: str) -> Iterator[tuple[str, Path]]:
    """A PgBouncer in transaction mode in front of the test database: its URL and its log."""
    binary = require_tool("pgbouncer", package="pgbouncer")
    # A folder of its own under the temporary directory: pytest's folders are private to root.
    folder = Path(tempfile.mkdtemp(prefix="cards-pgbouncer-"))
    port = free_port()
    app_role = Roles.for_database(database_url).app
    (folder / "users.txt").write_text(f'"postgres" ""\n"{app_role}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"postgres = host={_socket_dir(database_url)} dbname=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 200\n"
        f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n"
    )
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root: run it as the database's user
        shutil.chown(folder, "embedded_postgres")
        for path in folder.iterdir():
            shutil.chown(path, "embedded_postgres")
        command = ["runuser", "-u", "embedded_postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:

        def accepting() -> bool:
            try:
                with __import__("socket").create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(accepting, "PgBouncer's port")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", folder / "pgbouncer.log"
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


async def test_the_seed_flow_and_revocation_through_pgbouncer(
    pgbouncer: tuple[str, Path], database_url: str, owner_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    url, log = pgbouncer
    tenant = await issue_tenant(owner_pool)
    env = clean_env(
        DATABASE_URL=url,
        CARDS_DATABASE_DIRECT_URL=database_url,
        CARDS_DB_POOLER="transaction",
        CARDS_RATE_LIMIT="0",
    )
    server = start_server(tmp_path / "api", env, "--workers", "2")
    try:
        with httpx.Client(base_url=server.base_url, headers=tenant.headers(), timeout=10) as api:
            created = api.post(
                "/api/v1/cards/batch",
                json={"cards": SEED_CARDS},
                headers={"Idempotency-Key": "through-the-pooler"},
            )
            assert created.status_code == 201, created.text
            ids = [c["id"] for c in created.json()["cards"]]
            for _ in range(20):  # many transactions, spread over the pooler's server connections
                found = api.post("/api/v1/cards/retrieve", json={"card_ids": ids})
                assert [c["id"] for c in found.json()["cards"]] == ids
                searched = api.post("/api/v1/cards/retrieve", json={"query": "widgets"})
                assert searched.status_code == 200
            for attempt in range(2):
                used = api.post(
                    f"/api/v1/cards/{ids[0]}/usage",
                    json={"workflow_id": "pooled", "workflow_type": "premium_newsletter"},
                )
                assert used.json()["usage_count"] == attempt + 1
            context = api.post("/api/v1/context", json={"task": "widgets", "token_budget": 300})
            assert context.status_code == 200
            replay = api.post(
                "/api/v1/cards/batch",
                json={"cards": SEED_CARDS},
                headers={"Idempotency-Key": "through-the-pooler"},
            )
            assert replay.headers["Idempotent-Replayed"] == "true"

        async with owner_pool.acquire() as conn:  # revoke: the notice travels the direct URL
            key_id = await conn.fetchval("SELECT id FROM api_keys WHERE tenant_id = $1", tenant.id)
            assert await auth.revoke_key(conn, key_id=key_id) is not None
        started = time.monotonic()

        def refused_everywhere() -> bool:
            statuses = {
                httpx.get(
                    f"{server.base_url}/api/v1/cards",
                    headers={**tenant.headers(), "Connection": "close"},
                    timeout=5,
                ).status_code
                for _ in range(6)  # new connections: either worker may answer
            }
            return statuses == {401}

        wait_until(refused_everywhere, "the revoked key to be refused by both workers", timeout=5)
        assert time.monotonic() - started < 5
    finally:
        assert server.stop() == 0
    assert "Traceback" not in server.stderr()
    # The API's connections went through the pooler, as its app role.
    assert f"user={Roles.for_database(database_url).app}" in log.read_text()
