"""Operations endpoints: liveness, readiness and metrics, for orchestrators and Prometheus."""

from __future__ import annotations

import asyncio

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cards_api import metrics
from cards_api.api.openapi import problems
from cards_api.db.queries.schema import current_revision
from cards_api.domain import render
from cards_api.errors import ServiceUnavailable

router = APIRouter(tags=["operations"])

_OK = render.dumps({"status": "ok"})
_READY = render.dumps({"status": "ready"})
READY_TIMEOUT_S = 2.0


async def _schema_revision(request: Request) -> str | None:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire(timeout=READY_TIMEOUT_S) as conn:
        return await current_revision(conn)


@router.get("/health", responses={200: {"description": "The process answers"}})
async def health() -> Response:
    """Liveness: the process answers. Never touches the database."""
    return Response(_OK, media_type="application/json")


@router.get("/ready", responses={200: {"description": "Ready for traffic"}, **problems()})
async def ready(request: Request) -> Response:
    """Readiness: the database answers and its schema is at this build's latest migration."""
    revision = await _schema_revision(request)
    expected: str = request.app.state.schema_head
    if revision != expected:
        raise ServiceUnavailable(
            f"database schema is at {revision or 'no revision'}, this build needs {expected}",
            retry_after=5,
        )
    return Response(_READY, media_type="application/json")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics, summed over every worker process."""
    try:
        ready = await asyncio.wait_for(_schema_revision(request), READY_TIMEOUT_S) == (
            request.app.state.schema_head
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        ready = False
    body, content_type = metrics.render(database_ready=ready)
    return Response(body, media_type=content_type)
