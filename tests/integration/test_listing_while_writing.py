"""Creation order is commit order: a card committed while a listing is being walked appears in
the walk or sorts after the point the walk has reached; it never lands behind the cursor.

The slow writer is a real transaction of the service's own batch code, held open while other
batches are sent over HTTP and a lister walks the list page by page.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from cards_api.db.queries.tenancy import begin_for_tenant
from cards_api.domain import cards as cards_domain
from cards_api.domain.schemas import BatchCreateRequest
from tests.support import Tenant, card, connect_as_app

CARDS = "/api/v1/cards"


async def _batch(client: httpx.AsyncClient, tenant: Tenant, title: str) -> httpx.Response:
    return await client.post(
        f"{CARDS}/batch", json={"cards": [card(title=title)]}, headers=tenant.headers()
    )


async def _walk(
    client: httpx.AsyncClient, tenant: Tenant, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Walk the list one card a page, as an export does; return the cards and the last cursor."""
    seen: list[dict[str, Any]] = []
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(CARDS, params=params, headers=tenant.headers())).json()
        seen += page["cards"]
        if page["next_cursor"] is None:
            return seen, cursor
        cursor = page["next_cursor"]


async def _sorts_after(pool: asyncpg.Pool, card_id: str, reached: str) -> bool:
    async with pool.acquire() as conn:
        after: bool = await conn.fetchval(
            """
            SELECT (a.created_at, a.id) > (r.created_at, r.id)
            FROM cards a, cards r WHERE a.id = $1 AND r.id = $2
            """,
            UUID(card_id),
            UUID(reached),
        )
    return after


async def test_a_slow_batch_never_lands_behind_a_listers_cursor(
    client: httpx.AsyncClient, tenant: Tenant, owner_pool: asyncpg.Pool, database_url: str
) -> None:
    for title in ("P1", "P2"):
        assert (await _batch(client, tenant, title)).status_code == 201

    slow = await connect_as_app(database_url)
    try:
        await begin_for_tenant(slow, tenant_id=tenant.id)
        result = await cards_domain.create_batch(
            slow,
            tenant_id=tenant.id,
            request=BatchCreateRequest.model_validate({"cards": [card(title="Slow")]}),
        )
        slow_id = str(result.rows[0]["id"])
        # Two quick batches start while the slow one is still open.
        quick = [asyncio.create_task(_batch(client, tenant, t)) for t in ("Q1", "Q2")]
        await asyncio.sleep(0.3)
        walked, _ = await _walk(client, tenant)
        reached = walked[-1]["id"]  # how far the walk got before the slow batch committed
        await slow.execute("COMMIT")
    finally:
        await slow.close()
    responses = await asyncio.gather(*quick)
    assert [r.status_code for r in responses] == [201, 201]

    if slow_id not in {c["id"] for c in walked}:
        assert await _sorts_after(owner_pool, slow_id, reached), (
            "the slow batch's card sorts behind the point the walk had reached"
        )
    everything, _ = await _walk(client, tenant)
    titles = [c["title"] for c in everything]
    assert titles[:3] == ["P1", "P2", "Slow"]
    assert sorted(titles[3:]) == ["Q1", "Q2"]
