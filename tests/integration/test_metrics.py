"""/metrics counts what the database holds (events, not calls; nothing for a rollback), never
labels an unbounded value, lets no tenant spend the label budget, and serves only the operator."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from cards_api import metrics
from cards_api.settings import Settings
from tests.support import Tenant, card, client_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_requests_are_counted_by_route_template(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        "/api/v1/cards/batch", json={"cards": [card()]}, headers=tenant.headers()
    )
    card_id = created.json()["cards"][0]["id"]
    before = await scrape(client)
    await client.get(f"/api/v1/cards/{card_id}", headers=tenant.headers())
    await client.get(f"/api/v1/cards/{uuid.uuid4()}", headers=tenant.headers())
    await client.get("/no/such/route")
    after = await scrape(client)

    route = "/api/v1/cards/{card_id}"
    for status, delta in (("200", 1), ("404", 1)):
        name = "cards_api_requests_total"
        assert (
            value(after, name, method="GET", route=route, status=status)
            - value(before, name, method="GET", route=route, status=status)
            == delta
        )
    count = "cards_api_request_duration_seconds_count"
    assert (
        value(after, count, method="GET", route=route)
        - value(before, count, method="GET", route=route)
        == 2
    )
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, "cards_api_requests_total", **unmatched) > value(
        before, "cards_api_requests_total", **unmatched
    )


async def test_no_label_carries_an_id(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post(
        "/api/v1/cards/batch", json={"cards": [card()]}, headers=tenant.headers()
    )
    card_id = created.json()["cards"][0]["id"]
    await client.post(
        f"/api/v1/cards/{card_id}/usage",
        json={"workflow_id": "wf-secret-id", "workflow_type": "blog_post"},
        headers=tenant.headers(),
    )
    text = (await client.get("/metrics")).text
    for forbidden in (card_id, str(tenant.id), "wf-secret-id"):
        assert forbidden not in text


async def test_usage_events_count_recorded_events_not_calls(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        "/api/v1/cards/batch", json={"cards": [card("insight")]}, headers=tenant.headers()
    )
    card_id = created.json()["cards"][0]["id"]
    labels = {"card_type": "insight", "workflow_type": "metrics_test"}
    before = await scrape(client)
    for workflow_id in ("a", "a", "b", "a"):
        await client.post(
            f"/api/v1/cards/{card_id}/usage",
            json={"workflow_id": workflow_id, "workflow_type": "metrics_test"},
            headers=tenant.headers(),
        )
    after = await scrape(client)

    assert (
        value(after, "card_usage_events_total", **labels)
        - value(before, "card_usage_events_total", **labels)
        == 2
    )
    writes = "cards_usage_write_duration_seconds_count"
    assert value(after, writes) - value(before, writes) == 4


async def test_a_failed_usage_call_counts_no_event(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    before = await scrape(client)
    response = await client.post(
        f"/api/v1/cards/{uuid.uuid4()}/usage",
        json={"workflow_id": "w", "workflow_type": "failed_test"},
        headers=tenant.headers(),
    )
    assert response.status_code == 404
    after = await scrape(client)
    assert not [
        k
        for k in after
        if k[0] == "card_usage_events_total" and ("workflow_type", "failed_test") in k[1]
    ]
    writes = "cards_usage_write_duration_seconds_count"
    assert value(after, writes) == value(before, writes)


async def test_idempotency_replays_are_counted(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = tenant.headers(**{"Idempotency-Key": "metrics"})
    before = await scrape(client)
    for _ in range(3):
        await client.post("/api/v1/cards/batch", json={"cards": [card()]}, headers=headers)
    after = await scrape(client)
    name = "cards_idempotency_replays_total"
    assert value(after, name) - value(before, name) == 2


async def test_database_ready_gauge(client: httpx.AsyncClient) -> None:
    assert value(await scrape(client), "cards_api_database_ready") == 1.0


def test_workflow_type_labels_are_bounded() -> None:
    labels = {
        metrics.workflow_type_label(f"type_{i}", uuid.uuid4())
        for i in range(metrics.MAX_WORKFLOW_TYPES * 2)
    }
    assert len(labels) <= metrics.MAX_WORKFLOW_TYPES + 1
    assert metrics.OTHER in labels


def test_one_tenant_cannot_spend_the_whole_label_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_workflow_types", set())
    monkeypatch.setattr(metrics, "_introduced_by", {})
    greedy, other = uuid.uuid4(), uuid.uuid4()
    greedy_labels = [
        metrics.workflow_type_label(f"greedy_{i}", greedy)
        for i in range(metrics.MAX_WORKFLOW_TYPES)
    ]
    assert greedy_labels.count(metrics.OTHER) == (
        metrics.MAX_WORKFLOW_TYPES - metrics.MAX_WORKFLOW_TYPES_PER_TENANT
    )
    assert metrics.workflow_type_label("newsletter", other) == "newsletter"
    # A value admitted for one tenant is shared by all.
    assert metrics.workflow_type_label("greedy_0", other) == "greedy_0"


def test_unknown_methods_share_one_label() -> None:
    assert metrics.method_label("BREW") == "other"
    assert metrics.method_label("PATCH") == "PATCH"


async def test_metrics_are_served_to_loopback_clients_only_without_a_token(app: FastAPI) -> None:
    remote = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://cards.test") as http:
        response = await http.get("/metrics")
    assert response.status_code == 403
    assert "CARDS_METRICS_TOKEN" in response.json()["detail"]


async def test_with_a_token_metrics_need_it_from_everyone(settings: Settings) -> None:
    token = "operator-scrape-token-123"
    async with client_for(settings.model_copy(update={"metrics_token": SecretStr(token)})) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        right = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200
        assert "cards_api_requests_total" in right.text


async def test_embedding_and_context_metrics_follow_the_work(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    before = await scrape(client)
    embedder = {"embedder": "wordllama/l2_supercat_256"}
    await client.post(
        "/api/v1/cards/batch",
        json={"cards": [card(), card("voice", "Calm")]},
        headers=tenant.headers(),
    )
    made = await client.post(
        "/api/v1/context", json={"task": "acme", "token_budget": 200}, headers=tenant.headers()
    )
    after = await scrape(client)
    count = "cards_embedding_duration_seconds_count"
    # One batch embedded, one query embedded.
    assert value(after, count, **embedder) - value(before, count, **embedder) == 2
    tokens = "cards_context_tokens_sum"
    assert value(after, tokens) - value(before, tokens) == made.json()["tokens"]
    assert ("cards_embeddings_pending", frozenset()) in after


async def test_each_second_of_the_process_is_accounted_for_in_the_stall_histograms(
    client: httpx.AsyncClient,
) -> None:
    """The running app's stall monitor closes a second at a time: the lag and GC histograms
    gain one observation per second, so an operator's p99 over them means something."""
    before = await scrape(client)
    await asyncio.sleep(2.2)
    after = await scrape(client)
    for name in ("cards_api_event_loop_lag_seconds_count", "cards_api_gc_pause_seconds_count"):
        gained = value(after, name) - value(before, name)
        assert 2 <= gained <= 3, name
