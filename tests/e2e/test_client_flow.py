"""The seed's end-to-end flow through the Python client, against a real `cards-api serve`,
and the client's retries carrying work through a server restart."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from cards_client import CardsClient, NewCard
from tests.e2e.conftest import clean_env, free_port, start_server, wait_until
from tests.support import SEED_CARDS, count_rows, issue_tenant

pytestmark = pytest.mark.e2e


def test_the_seeds_flow_through_the_client(tmp_path: Path) -> None:
    server = start_server(tmp_path / "logs", clean_env(CARDS_DATA_DIR=str(tmp_path / "data")))
    try:
        tenant = re.search(r"CARDS_TENANT_ID=(\S+)", server.stdout())
        key = re.search(r"CARDS_API_KEY=(\S+)", server.stdout())
        assert tenant
        assert key
        with CardsClient(server.base_url, api_key=key.group(1), tenant_id=tenant.group(1)) as cards:
            # Onboarding creates company, audience, voice and insight cards in one batch.
            onboarding = [NewCard.model_validate(c) for c in SEED_CARDS]
            created = cards.create_cards(onboarding, idempotency_key="onboarding-e2e")
            assert (created.created, created.replayed) == (4, False)
            assert [c.card_type for c in created.cards] == [
                "company",
                "audience",
                "voice",
                "insight",
            ]

            # A premium_newsletter workflow retrieves them and tracks their use.
            ids = [c.id for c in created.cards]
            retrieved = cards.retrieve(card_ids=ids)
            assert [c.id for c in retrieved.cards] == ids
            assert retrieved.missing_ids == []
            for card_id in ids:
                used = cards.track_usage(
                    card_id, workflow_id="newsletter-run-1", workflow_type="premium_newsletter"
                )
                assert (used.event_recorded, used.usage_count) == (True, 1)

            # Usage counts went up, and the events are visible to operators on /metrics.
            assert [cards.get(i).usage_count for i in ids] == [1, 1, 1, 1]
            summary = cards.usage_summary(group_by="workflow_type")
            assert [(g.key, g.events) for g in summary.groups] == [("premium_newsletter", 4)]
            metrics = httpx.get(f"{server.base_url}/metrics").text
            events = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("card_usage_events_total{")
                and 'workflow_type="premium_newsletter"' in line
            )
            assert events == 4

            # Replaying onboarding with its key returns the same cards, marked as a replay.
            replay = cards.create_cards(onboarding, idempotency_key="onboarding-e2e")
            assert replay.replayed is True
            assert [c.id for c in replay.cards] == ids
            assert len(list(cards.list_cards())) == 4

            # The rest of the surface, once each.
            patched = cards.update(ids[0], title="Renamed", if_version=1)
            assert patched.version == 2
            assert [v.version for v in cards.versions(ids[0])] == [2, 1]
            assert [e.workflow_id for e in cards.usage_events(ids[0])] == ["newsletter-run-1"]
            cards.archive(ids[3])
            assert cards.retrieve(card_ids=ids).missing_ids == [ids[3]]
            assert cards.health() is True
            assert cards.ready() is True
    finally:
        assert server.stop() == 0


async def test_retries_carry_work_through_a_server_restart(
    database_url: str, owner_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tenant = await issue_tenant(owner_pool)
    env = clean_env(DATABASE_URL=database_url)
    port = free_port()
    server = start_server(tmp_path / "first", env, port=port)
    results: dict[str, Any] = {}
    progress = {"calls": 0, "refused": 0}

    class Counting(httpx.HTTPTransport):
        """Counts the attempts the server's outage refused (the client retries them)."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            try:
                response = super().handle_request(request)
            except httpx.ConnectError:
                progress["refused"] += 1
                raise
            progress["calls"] += 1
            return response

    def workload() -> None:
        with CardsClient(
            server.base_url,
            api_key=tenant.key,
            tenant_id=tenant.id,
            max_retries=20,
            backoff=0.2,
            max_backoff=1.0,
            transport=Counting(),
        ) as cards:
            try:
                batch = cards.create_cards(SEED_CARDS)
                # Ten runs at least, and on until the restart was felt: on a busy machine ten
                # runs could all end before the server was stopped.
                runs = 0
                while runs < 10 or (not progress["refused"] and runs < 10_000):
                    for card in batch.cards:
                        for _ in range(2):  # the second call of a run is deduplicated
                            cards.track_usage(
                                card.id, workflow_id=f"run-{runs}", workflow_type="restart_test"
                            )
                    runs += 1
                results["ids"] = [str(c.id) for c in batch.cards]
                results["runs"] = runs
            except Exception as exc:
                results["error"] = exc

    worker = threading.Thread(target=workload)
    worker.start()
    wait_until(lambda: progress["calls"] >= 8, "the client's work to be under way")
    server.stop()  # mid-run: SIGTERM, in-flight calls finish, the rest meet a closed port
    wait_until(lambda: progress["refused"] >= 1, "the client to meet the closed port")
    restarted = start_server(tmp_path / "second", env, port=port)
    try:
        worker.join(timeout=120)
        assert not worker.is_alive()
        assert "error" not in results, results.get("error")
    finally:
        restarted.stop()

    assert await count_rows(owner_pool, "cards", tenant.id) == 4
    runs = results["runs"]
    assert await count_rows(owner_pool, "card_usage", tenant.id) == 4 * runs
    async with owner_pool.acquire() as conn:
        counts = await conn.fetch("SELECT usage_count FROM cards WHERE tenant_id = $1", tenant.id)
    assert [r["usage_count"] for r in counts] == [2 * runs] * 4
    async with owner_pool.acquire() as conn:
        stored = await conn.fetch("SELECT id FROM cards WHERE tenant_id = $1", tenant.id)
    # The client's view and the database agree: the four cards it was told about, no other.
    assert sorted(results["ids"]) == sorted(str(r["id"]) for r in stored)
    assert progress["refused"] >= 1, "the restart was never felt by the client"
