"""Usage follows the seed: one event per (workflow_id, card), `usage_count` + 1 on every call,
exact under concurrency; events list newest first; the summary counts events, not calls."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import SEED_CARDS, Tenant, card, count_rows


async def _create(client: httpx.AsyncClient, tenant: Tenant, *cards: dict[str, Any]) -> list[str]:
    response = await client.post(
        "/api/v1/cards/batch", json={"cards": list(cards)}, headers=tenant.headers()
    )
    assert response.status_code == 201
    return [c["id"] for c in response.json()["cards"]]


def _use(
    workflow_id: str, workflow_type: str = "premium_newsletter", **extra: str
) -> dict[str, str]:
    return {"workflow_id": workflow_id, "workflow_type": workflow_type, **extra}


async def test_track_usage_happy_path(client: httpx.AsyncClient, tenant: Tenant) -> None:
    (card_id,) = await _create(client, tenant, card())
    response = await client.post(
        f"/api/v1/cards/{card_id}/usage",
        json=_use("workflow-123", session_id="session-456"),
        headers=tenant.headers(),
    )

    assert response.status_code == 200
    assert response.headers["X-Event-Recorded"] == "true"
    body = response.json()
    assert body["card_id"] == card_id
    assert body["usage_count"] == 1
    assert body["event_recorded"] is True
    assert body["last_used_at"].endswith("Z")
    fetched = (await client.get(f"/api/v1/cards/{card_id}", headers=tenant.headers())).json()
    assert fetched["usage_count"] == 1
    assert fetched["last_used_at"] == body["last_used_at"]


async def test_same_workflow_again_counts_but_records_no_event(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    (card_id,) = await _create(client, tenant, card())
    url = f"/api/v1/cards/{card_id}/usage"
    first = await client.post(url, json=_use("wf-1"), headers=tenant.headers())
    second = await client.post(url, json=_use("wf-1"), headers=tenant.headers())

    assert second.headers["X-Event-Recorded"] == "false"
    assert second.json()["event_recorded"] is False
    assert second.json()["usage_count"] == 2
    assert second.json()["last_used_at"] >= first.json()["last_used_at"]
    assert await count_rows(owner_pool, "card_usage", tenant.id) == 1


async def test_different_workflows_each_record_an_event(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    (card_id,) = await _create(client, tenant, card())
    for workflow_id in ("wf-a", "wf-b", "wf-c"):
        response = await client.post(
            f"/api/v1/cards/{card_id}/usage", json=_use(workflow_id), headers=tenant.headers()
        )
        assert response.headers["X-Event-Recorded"] == "true"
    assert await count_rows(owner_pool, "card_usage", tenant.id) == 3


async def test_unknown_card_is_404_and_records_nothing(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    response = await client.post(
        f"/api/v1/cards/{uuid.uuid4()}/usage", json=_use("wf"), headers=tenant.headers()
    )
    assert response.status_code == 404
    assert await count_rows(owner_pool, "card_usage", tenant.id) == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"workflow_type": "x"}, ["body", "workflow_id"]),
        (_use(""), ["body", "workflow_id"]),
        (_use("w" * 201), ["body", "workflow_id"]),
        (_use("w", "Premium-Newsletter"), ["body", "workflow_type"]),
        (_use("w", "x" * 65), ["body", "workflow_type"]),
        (_use("w", session_id="s" * 201), ["body", "session_id"]),
        ({**_use("w"), "usage_count": 3}, ["body", "usage_count"]),
    ],
)
async def test_invalid_usage_is_422(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[str]
) -> None:
    (card_id,) = await _create(client, tenant, card())
    response = await client.post(
        f"/api/v1/cards/{card_id}/usage", json=body, headers=tenant.headers()
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == loc


async def test_100_concurrent_calls_over_7_workflows(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    (card_id,) = await _create(client, tenant, card())
    url = f"/api/v1/cards/{card_id}/usage"
    responses = await asyncio.gather(
        *(client.post(url, json=_use(f"wf-{i % 7}"), headers=tenant.headers()) for i in range(100))
    )

    assert all(r.status_code == 200 for r in responses)
    assert sum(r.headers["X-Event-Recorded"] == "true" for r in responses) == 7
    assert sorted(r.json()["usage_count"] for r in responses) == list(range(1, 101))
    async with owner_pool.acquire() as conn:
        usage_count = await conn.fetchval(
            "SELECT usage_count FROM cards WHERE tenant_id = $1 AND id = $2",
            tenant.id,
            uuid.UUID(card_id),
        )
        events = await conn.fetch(
            "SELECT workflow_id FROM card_usage WHERE tenant_id = $1 AND card_id = $2",
            tenant.id,
            uuid.UUID(card_id),
        )
    assert usage_count == 100
    assert sorted(e["workflow_id"] for e in events) == [f"wf-{i}" for i in range(7)]


async def test_events_are_listed_newest_first_and_paginate(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    (card_id,) = await _create(client, tenant, card())
    url = f"/api/v1/cards/{card_id}/usage"
    for i in range(5):
        await client.post(
            url, json=_use(f"wf-{i}", "blog_post", session_id=f"s{i}"), headers=tenant.headers()
        )
    await client.post(url, json=_use("wf-0"), headers=tenant.headers())  # deduplicated

    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=params, headers=tenant.headers())
        assert response.status_code == 200
        events += response.json()["events"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert [e["workflow_id"] for e in events] == ["wf-4", "wf-3", "wf-2", "wf-1", "wf-0"]
    assert events[0] == {
        "workflow_id": "wf-4",
        "workflow_type": "blog_post",
        "session_id": "s4",
        "created_at": events[0]["created_at"],
    }


async def test_events_of_unknown_card_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(f"/api/v1/cards/{uuid.uuid4()}/usage", headers=tenant.headers())
    assert response.status_code == 404


async def test_summary_groups_events(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company, audience, _voice, _insight = await _create(client, tenant, *SEED_CARDS)
    calls = [
        (company, _use("r1", "premium_newsletter")),
        (company, _use("r2", "blog_post")),
        (company, _use("r2", "blog_post")),  # deduplicated: not an event
        (audience, _use("r1", "premium_newsletter")),
    ]
    for card_id, body in calls:
        await client.post(f"/api/v1/cards/{card_id}/usage", json=body, headers=tenant.headers())

    async def groups(**params: str) -> list[dict[str, Any]]:
        response = await client.get(
            "/api/v1/usage/summary", params=params, headers=tenant.headers()
        )
        assert response.status_code == 200
        assert response.json()["group_by"] == params.get("group_by", "card_type")
        result: list[dict[str, Any]] = response.json()["groups"]
        return result

    assert await groups() == [{"key": "company", "events": 2}, {"key": "audience", "events": 1}]
    assert await groups(group_by="workflow_type") == [
        {"key": "premium_newsletter", "events": 2},
        {"key": "blog_post", "events": 1},
    ]
    assert await groups(group_by="card") == [
        {"key": company, "events": 2},
        {"key": audience, "events": 1},
    ]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert await groups(since=future) == []
    assert await groups(until=past) == []
    assert len(await groups(since=past, until=future)) == 2


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"group_by": "tenant"}, ["query", "group_by"]),
        ({"since": "yesterday"}, ["query", "since"]),
        ({"since": "2025-01-01T00:00:00"}, ["query", "since"]),
        ({"since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"}, ["query", "until"]),
    ],
)
async def test_invalid_summary_parameters_are_422(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str], loc: list[str]
) -> None:
    response = await client.get("/api/v1/usage/summary", params=params, headers=tenant.headers())
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == loc
