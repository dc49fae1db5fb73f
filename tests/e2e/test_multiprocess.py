"""Several API processes on one database: idempotency, usage counts and revocation hold across
them, because they rest on PostgreSQL, not on process memory."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import Server, clean_env, run_cli, start_server
from tests.support import SEED_CARDS, count_rows, issue_tenant

pytestmark = pytest.mark.e2e


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    env = clean_env(DATABASE_URL=database_url, CARDS_RATE_LIMIT="0")
    first = start_server(tmp_path / "a", env)
    second = start_server(tmp_path / "b", env)
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


async def test_one_idempotency_key_sent_to_two_processes_at_once_creates_one_batch(
    two_servers: tuple[Server, Server], owner_pool: asyncpg.Pool
) -> None:
    tenant = await issue_tenant(owner_pool)
    headers = tenant.headers(**{"Idempotency-Key": "cross-process"})

    def send(server: Server) -> httpx.Response:
        return httpx.post(
            f"{server.base_url}/api/v1/cards/batch",
            json={"cards": SEED_CARDS},
            headers=headers,
            timeout=30,
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, [*two_servers] * 4))

    assert {r.status_code for r in responses} <= {201, 409}
    created = [r for r in responses if r.status_code == 201]
    assert [r.headers["Idempotent-Replayed"] for r in created].count("false") == 1
    assert len({r.content for r in created}) == 1
    assert await count_rows(owner_pool, "cards", tenant.id) == 4
    assert await count_rows(owner_pool, "idempotency_records", tenant.id) == 1


async def test_usage_spread_over_two_processes_counts_exactly(
    two_servers: tuple[Server, Server], owner_pool: asyncpg.Pool
) -> None:
    tenant = await issue_tenant(owner_pool)
    batch = httpx.post(
        f"{two_servers[0].base_url}/api/v1/cards/batch",
        json={"cards": SEED_CARDS[:1]},
        headers=tenant.headers(),
    )
    card_id = batch.json()["cards"][0]["id"]
    calls = 200

    def use(i: int) -> httpx.Response:
        server = two_servers[i % 2]
        return httpx.post(
            f"{server.base_url}/api/v1/cards/{card_id}/usage",
            json={"workflow_id": f"run-{i % 9}", "workflow_type": "spread"},
            headers=tenant.headers(),
            timeout=30,
        )

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(use, range(calls)))

    assert [r.status_code for r in responses] == [200] * calls
    assert sum(r.headers["X-Event-Recorded"] == "true" for r in responses) == 9
    async with owner_pool.acquire() as conn:
        count = await conn.fetchval("SELECT usage_count FROM cards WHERE tenant_id = $1", tenant.id)
    assert count == calls
    assert await count_rows(owner_pool, "card_usage", tenant.id) == 9


async def test_a_revoked_key_stops_working_on_every_worker_within_seconds(
    database_url: str, owner_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    env = clean_env(DATABASE_URL=database_url, CARDS_RATE_LIMIT="0")
    server = start_server(tmp_path / "api", env, "--workers", "2")
    try:
        tenant = await issue_tenant(owner_pool)
        made = run_cli("keys", "create", "--tenant", str(tenant.id), "--json", env=env)
        issued = json.loads(made.stdout)
        headers = {"Authorization": f"Bearer {issued['key']}", "X-Tenant-ID": str(tenant.id)}

        def status() -> int:  # a new connection each time: either worker may answer
            return httpx.get(
                f"{server.base_url}/api/v1/cards", headers={**headers, "Connection": "close"}
            ).status_code

        assert [status() for _ in range(20)] == [200] * 20  # cached by both workers now
        assert run_cli("keys", "revoke", issued["id"], env=env).returncode == 0
        revoked_at = time.monotonic()
        deadline = revoked_at + 5
        streak = 0
        while streak < 20:  # twenty 401s in a row: every worker has dropped the key
            assert time.monotonic() < deadline, "the revoked key still works on some worker"
            streak = streak + 1 if status() == 401 else 0
        assert time.monotonic() - revoked_at < 5
    finally:
        server.stop()
