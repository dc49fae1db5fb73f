"""Context assembly (SPEC v1.1): whole cards, `include` first, then by relevance within the
filters and `per_type_limit`; `tokens` is the exact cl100k_base count of `text` and never over
the budget; what is left out says why; the same request gives the same text; usage is recorded
in the same transaction when a workflow is named; every context can be read back for audit by its
own tenant only, until it expires."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from cards_api import auth, housekeeping
from cards_api.search import tokenizer
from tests.support import Tenant, card, issue_tenant

CONTEXT = "/api/v1/context"

CARDS = [
    card(
        "company", "Acme Widgets", content={"summary": "Makes industrial widgets", "founded": 1990}
    ),
    card(
        "audience",
        "Plant managers",
        content={"roles": ["plant manager", "COO"], "pain": "downtime"},
    ),
    card("voice", "Plain and warm", content={"tone": "plain English, warm, never pushy"}),
    card("insight", "Widget pricing", content={"text": "Widget prices rise ten percent in March"}),
    card(
        "insight",
        "Widget reliability",
        content={"text": "Our widgets fail half as often as rivals'"},
    ),
]


async def _seed(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    response = await client.post(
        "/api/v1/cards/batch", json={"cards": CARDS}, headers=tenant.headers()
    )
    assert response.status_code == 201
    created: list[dict[str, Any]] = response.json()["cards"]
    return created


async def _context(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> httpx.Response:
    payload = {
        "task": "Write the March newsletter about widget pricing",
        "token_budget": 1000,
        **body,
    }
    return await client.post(CONTEXT, json=payload, headers=tenant.headers())


async def test_the_text_is_grouped_by_type_and_counted_exactly(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _seed(client, tenant)
    response = await _context(client, tenant)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tokenizer"] == "cl100k_base"
    assert body["tokens"] == tokenizer.count(body["text"]) <= body["token_budget"]
    assert len(body["cards"]) == 5
    assert body["cards"][0]["title"] == "Widget pricing"  # the most relevant card leads
    text = body["text"]
    assert text.startswith("## Insight\n\n### Widget pricing\ntext: Widget prices rise")
    assert "## Company\n\n### Acme Widgets\n" in text
    assert "\nsummary: Makes industrial widgets" in text
    assert "\nfounded: 1990" in text
    assert "roles: plant manager, COO" in text
    for entry in body["cards"]:
        assert entry["version"] == 1
        assert entry["tokens"] > 0
        assert isinstance(entry["score"], float)
    assert body["omitted"] == []


@pytest.mark.parametrize("budget", [50, 60, 80, 120, 200])
async def test_cards_are_packed_whole_and_the_budget_is_never_exceeded(
    client: httpx.AsyncClient, tenant: Tenant, budget: int
) -> None:
    await _seed(client, tenant)
    body = (await _context(client, tenant, token_budget=budget)).json()
    assert body["tokens"] == tokenizer.count(body["text"]) <= budget
    packed = {c["title"] for c in body["cards"]}
    for original in CARDS:
        if original["title"] in packed:
            assert f"### {original['title']}\n" in body["text"]  # whole, with its content
        else:
            assert original["title"] not in body["text"]
    assert len(body["cards"]) + len(body["omitted"]) == 5
    assert {o["reason"] for o in body["omitted"]} <= {"budget"}


async def test_include_comes_first_and_unknown_ids_are_reported(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    created = await _seed(client, tenant)
    foreign = (
        await client.post(
            "/api/v1/cards/batch", json={"cards": [card()]}, headers=other_tenant.headers()
        )
    ).json()["cards"][0]["id"]
    voice, company = created[2]["id"], created[0]["id"]
    body = (await _context(client, tenant, include=[voice, foreign, company])).json()
    assert [c["id"] for c in body["cards"][:2]] == [voice, company]
    assert body["cards"][0]["score"] is None
    assert {"id": foreign, "reason": "not_found"} in body["omitted"]
    assert "Acme" not in json.dumps(body["omitted"])


async def test_per_type_limit_and_filters(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _seed(client, tenant)
    body = (await _context(client, tenant, per_type_limit={"insight": 1})).json()
    types = [c["card_type"] for c in body["cards"]]
    assert types.count("insight") == 1
    assert [o["reason"] for o in body["omitted"]] == ["per_type_limit"]
    only = (await _context(client, tenant, card_types=["voice", "company"])).json()
    assert {c["card_type"] for c in only["cards"]} == {"voice", "company"}


async def test_json_format_is_an_array_of_the_cards(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _seed(client, tenant)
    body = (await _context(client, tenant, format="json", token_budget=300)).json()
    items = json.loads(body["text"])
    assert [i["title"] for i in items] == [c["title"] for c in body["cards"]]
    assert set(items[0]) == {"card_type", "title", "content"}
    assert body["tokens"] == tokenizer.count(body["text"]) <= 300


async def test_the_same_request_gives_the_same_text_under_a_new_id(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _seed(client, tenant)
    first, second = (await _context(client, tenant)).json(), (await _context(client, tenant)).json()
    assert first["text"] == second["text"]
    assert first["context_id"] != second["context_id"]


async def test_naming_a_workflow_records_usage_once_per_card(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    created = await _seed(client, tenant)
    workflow = {"workflow_id": "newsletter-2026-03", "workflow_type": "premium_newsletter"}
    first = await _context(client, tenant, token_budget=120, **workflow)
    used = [c["id"] for c in first.json()["cards"]]
    assert first.headers["X-Usage-Recorded"] == str(len(used)) != "0"
    again = await _context(client, tenant, token_budget=120, **workflow)
    assert again.headers["X-Usage-Recorded"] == "0"  # the same run: no new events
    async with owner_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id::text, usage_count FROM cards WHERE tenant_id = $1", tenant.id
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM card_usage WHERE tenant_id = $1", tenant.id
        )
    counts = {r["id"]: r["usage_count"] for r in rows}
    assert {cid: counts[cid] for cid in used} == dict.fromkeys(used, 2)
    assert all(counts[c["id"]] == 0 for c in created if c["id"] not in used)
    assert events == len(used)


async def test_recording_usage_needs_the_usage_scope(
    client: httpx.AsyncClient, owner_pool: asyncpg.Pool
) -> None:
    reader = await issue_tenant(owner_pool, {auth.Scope.CARDS_READ})
    plain = await _context(client, reader)
    assert plain.status_code == 200
    with_workflow = await _context(client, reader, workflow_id="w", workflow_type="t")
    assert with_workflow.status_code == 403
    assert "usage:write" in with_workflow.json()["detail"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"token_budget": 49}, ["body", "token_budget"]),
        ({"token_budget": 32_001}, ["body", "token_budget"]),
        ({"task": "   "}, ["body", "task"]),
        ({"task": "x" * 2001}, ["body", "task"]),
        ({"include": [str(uuid.uuid4()) for _ in range(21)]}, ["body", "include"]),
        ({"per_type_limit": {"robot": 1}}, ["body", "per_type_limit", "robot", "[key]"]),
        ({"per_type_limit": {"voice": -1}}, ["body", "per_type_limit", "voice"]),
        ({"format": "html"}, ["body", "format"]),
        ({"workflow_id": "w"}, ["body"]),
        ({"workflow_type": "Not A Slug", "workflow_id": "w"}, ["body", "workflow_type"]),
    ],
)
async def test_bad_requests_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[str]
) -> None:
    response = await _context(client, tenant, **body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][: len(loc)] == loc


async def test_a_context_reads_back_for_its_tenant_only(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _seed(client, tenant)
    made = (await _context(client, tenant, token_budget=120)).json()
    path = f"/api/v1/contexts/{made['context_id']}"
    record = (await client.get(path, headers=tenant.headers())).json()
    assert record["cards"] == made["cards"]
    assert record["omitted"] == made["omitted"]
    assert record["tokens"] == made["tokens"]
    assert record["task"] == "Write the March newsletter about widget pricing"
    assert record["tokenizer"] == "cl100k_base"
    foreign = await client.get(path, headers=other_tenant.headers())
    unknown = await client.get(f"/api/v1/contexts/{uuid.uuid4()}", headers=tenant.headers())
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["title"] == unknown.json()["title"]


async def test_expired_contexts_are_purged(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool, app: Any
) -> None:
    await _seed(client, tenant)
    made = (await _context(client, tenant)).json()
    async with owner_pool.acquire() as conn:
        await conn.execute(
            "UPDATE contexts SET expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(made["context_id"]),
        )
    assert await housekeeping.purge_contexts(app.state.pool) >= 1
    async with owner_pool.acquire() as conn:
        left = await conn.fetchval(
            "SELECT count(*) FROM contexts WHERE id = $1", uuid.UUID(made["context_id"])
        )
    assert left == 0


async def test_a_task_with_no_searchable_word_packs_only_what_is_included(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await _seed(client, tenant)
    body = (await _context(client, tenant, task="???", include=[created[0]["id"]])).json()
    assert [c["id"] for c in body["cards"]] == [created[0]["id"]]
