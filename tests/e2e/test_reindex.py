"""`cards-api reindex` embeds every pending card while the service keeps serving, touches only
the tenant it is given, and can be run again at any time (resumable: what it stored is done)."""

from __future__ import annotations

import re
import threading

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import Server, clean_env, run_cli
from tests.support import Tenant, card, issue_tenant

pytestmark = pytest.mark.e2e


def _pending(server: Server, tenant: Tenant) -> int:
    info = httpx.get(f"{server.base_url}/api/v1/search/info", headers=tenant.headers(), timeout=10)
    pending: int = info.json()["pending"]
    return pending


async def test_reindex_embeds_pending_cards_while_serving(
    server_on_test_database: Server, owner_pool: asyncpg.Pool, database_url: str
) -> None:
    server = server_on_test_database
    target, bystander = await issue_tenant(owner_pool), await issue_tenant(owner_pool)
    for tenant in (target, bystander):
        created = httpx.post(
            f"{server.base_url}/api/v1/cards/batch",
            json={"cards": [card(title=f"Card {i}") for i in range(30)]},
            headers=tenant.headers(),
            timeout=30,
        )
        assert created.status_code == 201
    async with owner_pool.acquire() as conn:  # as after a change of model: nothing embedded
        await conn.execute(
            "DELETE FROM card_embeddings WHERE tenant_id = ANY($1::uuid[])",
            [target.id, bystander.id],
        )
    assert _pending(server, target) == 30

    statuses: list[int] = []
    stop = threading.Event()

    def serve_meanwhile() -> None:
        with httpx.Client(base_url=server.base_url, headers=target.headers(), timeout=10) as api:
            while not stop.is_set():
                statuses.append(
                    api.post("/api/v1/cards/retrieve", json={"query": "card"}).status_code
                )

    reader = threading.Thread(target=serve_meanwhile)
    reader.start()
    try:
        result = run_cli(
            "reindex", "--tenant", str(target.id), env=clean_env(DATABASE_URL=database_url)
        )
    finally:
        stop.set()
        reader.join(timeout=30)
    assert result.returncode == 0, result.stderr
    done = re.search(r"embedded (\d+) cards with wordllama/l2_supercat_256", result.stdout)
    assert done is not None, result.stdout
    # Only the target's cards (the server's own worker may have taken some of them first).
    assert int(done.group(1)) <= 30
    assert _pending(server, target) == 0
    assert statuses, "no request was served during the reindex"
    assert set(statuses) == {200}
    # Another run finds nothing left to do.
    again = run_cli("reindex", "--tenant", str(target.id), env=clean_env(DATABASE_URL=database_url))
    assert again.returncode == 0
    assert "embedded 0 cards" in again.stdout
