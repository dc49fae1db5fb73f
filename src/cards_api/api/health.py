"""Liveness and readiness, for orchestrators and load balancers."""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cards_api.api.openapi import problems
from cards_api.db.queries.schema import current_revision
from cards_api.domain import render
from cards_api.errors import ServiceUnavailable

router = APIRouter(tags=["operations"])

_OK = render.dumps({"status": "ok"})
_READY = render.dumps({"status": "ready"})


@router.get("/health", responses={200: {"description": "The process answers"}})
async def health() -> Response:
    """Liveness: the process answers. Never touches the database."""
    return Response(_OK, media_type="application/json")


@router.get("/ready", responses={200: {"description": "Ready for traffic"}, **problems()})
async def ready(request: Request) -> Response:
    """Readiness: the database answers and its schema is at this build's latest migration."""
    pool: asyncpg.Pool = request.app.state.pool
    expected: str = request.app.state.schema_head
    async with pool.acquire(timeout=2.0) as conn:
        revision = await current_revision(conn)
    if revision != expected:
        raise ServiceUnavailable(
            f"database schema is at {revision or 'no revision'}, this build needs {expected}",
            retry_after=5,
        )
    return Response(_READY, media_type="application/json")
