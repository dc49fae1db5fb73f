"""Ready for Citus with `tenant_id` as the distribution column: every statement the service runs
on a tenant table names `tenant_id` (so each can be routed to one shard), watched on the real
pool while every route, the embedding worker and the purges run. (Keys leading with `tenant_id`
are checked in test_isolation.py.) The cross-tenant maintenance work runs inside the granted
SECURITY DEFINER functions, listed in docs/scaling.md, and never as a statement of the API's."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from cards_api import app as app_module
from cards_api import housekeeping
from cards_api.app import create_app
from cards_api.db.pool import create_pool
from cards_api.settings import Settings
from tests.support import Tenant, card, lifespan, until_listening

TENANT_TABLES = re.compile(
    r"\b(cards|card_versions|card_usage|idempotency_records|api_keys|card_embeddings|contexts)\b"
)


@pytest.fixture
async def watched(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, list[str], object]]:
    statements: list[str] = []

    async def watch(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    monkeypatch.setattr(app_module, "create_pool", functools.partial(create_pool, init=watch))
    application = create_app(settings)
    async with lifespan(application):
        await until_listening(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://cards.test") as http:
            yield http, statements, application


async def test_every_statement_on_a_tenant_table_names_tenant_id(
    watched: tuple[httpx.AsyncClient, list[str], object], tenant: Tenant
) -> None:
    client, statements, application = watched
    h = tenant.headers()
    batch = await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card(external_ref="a", tags=["t"]), card("voice", "Calm")]},
        headers={**h, "Idempotency-Key": "citus"},
    )
    card_id = batch.json()["cards"][0]["id"]
    for body in (
        {"card_ids": [card_id]},
        {"card_types": ["voice"]},
        {"tags": ["t"]},
        {"query": "acme", "mode": "text"},
        {"query": "acme", "mode": "semantic"},
        {"query": "acme", "card_types": ["company"]},
    ):
        assert (
            await client.post("/api/v1/cards/retrieve", json=body, headers=h)
        ).status_code == 200
    assert (await client.get("/api/v1/cards", params={"tag": "t"}, headers=h)).status_code == 200
    assert (await client.get(f"/api/v1/cards/{card_id}", headers=h)).status_code == 200
    patched = await client.patch(
        f"/api/v1/cards/{card_id}", json={"title": "Acme 2"}, headers={**h, "If-Match": '"1"'}
    )
    assert patched.status_code == 200
    assert (await client.get(f"/api/v1/cards/{card_id}/versions", headers=h)).status_code == 200
    usage = {"workflow_id": "w", "workflow_type": "t"}
    assert (
        await client.post(f"/api/v1/cards/{card_id}/usage", json=usage, headers=h)
    ).status_code == 200
    assert (await client.get(f"/api/v1/cards/{card_id}/usage", headers=h)).status_code == 200
    assert (await client.get("/api/v1/usage/summary", headers=h)).status_code == 200
    made = await client.post(
        "/api/v1/context", json={"task": "acme", "token_budget": 200, **usage}, headers=h
    )
    context_id = made.json()["context_id"]
    assert (await client.get(f"/api/v1/contexts/{context_id}", headers=h)).status_code == 200
    assert (await client.get("/api/v1/search/info", headers=h)).status_code == 200
    missing = await client.get(f"/api/v1/cards/{uuid.uuid4()}", headers=h)
    assert missing.status_code == 404
    assert (await client.delete(f"/api/v1/cards/{card_id}", headers=h)).status_code == 204
    state = application.state  # type: ignore[attr-defined]
    await state.embedding_worker.run_pass()
    await housekeeping.run_once(state.pool)

    on_tenant_tables = [s for s in statements if TENANT_TABLES.search(s)]
    assert len(on_tenant_tables) > 20  # the watch saw the traffic
    unscoped = [s for s in on_tenant_tables if "tenant_id" not in s]
    assert unscoped == []
