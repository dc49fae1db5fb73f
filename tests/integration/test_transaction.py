"""The request's transaction (`api/transaction.py`) leaves nothing behind for the garbage
collector: what runs after commit is a closure over the session, and a session still holding it
after the request would be a reference cycle, freed only by a collection (a worker under load
paused for them; docs/performance.md)."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable

import httpx

from cards_api.api.transaction import TenantSession
from tests.support import Tenant, card


async def _sessions_left_as_garbage(request: Callable[[], Awaitable[httpx.Response]]) -> int:
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # unreachable objects are kept in gc.garbage, not freed
    try:
        response = await request()
        assert response.status_code in (200, 201), response.text
        gc.collect()
        return sum(isinstance(obj, TenantSession) for obj in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_requests_with_after_commit_work_leave_no_session_cycle(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = tenant.headers()
    usage = {"workflow_id": "wf-gc", "workflow_type": "newsletter"}

    async def batch() -> httpx.Response:
        return await client.post(
            "/api/v1/cards/batch", json={"cards": [card(title="Acme")]}, headers=headers
        )

    assert await _sessions_left_as_garbage(batch) == 0
    listed = await client.get("/api/v1/cards", headers=headers)
    card_id = listed.json()["cards"][0]["id"]

    async def track() -> httpx.Response:
        return await client.post(f"/api/v1/cards/{card_id}/usage", json=usage, headers=headers)

    async def context() -> httpx.Response:
        body = {"task": "Acme", "token_budget": 500, **usage, "workflow_id": "wf-gc-2"}
        return await client.post("/api/v1/context", json=body, headers=headers)

    assert await _sessions_left_as_garbage(track) == 0
    assert await _sessions_left_as_garbage(context) == 0
