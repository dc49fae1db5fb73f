"""Operations endpoints: liveness, readiness and metrics, for orchestrators and Prometheus."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cards_api import metrics
from cards_api.api.openapi import problems
from cards_api.db.queries.schema import current_revision
from cards_api.domain import render
from cards_api.errors import Forbidden, ServiceUnavailable, Unauthorized

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


def _allow_scrape(request: Request) -> None:
    token = request.app.state.settings.metrics_token
    if token is not None:
        scheme, _, sent = (request.headers.get("authorization") or "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected):
            raise Unauthorized("/metrics requires the operator's token: Authorization: Bearer …")
        return
    client = request.scope.get("client")
    try:
        loopback = client is not None and ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise Forbidden(
            "/metrics is served to loopback clients only; the operator sets CARDS_METRICS_TOKEN "
            "to let a scraper elsewhere in"
        )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
        **problems(401, 403),
    },
)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics, summed over every worker process.

    Only for the operator's scraper: with `CARDS_METRICS_TOKEN` set, a request must carry it as
    a bearer token (401 otherwise); without it, only clients on the loopback address are served
    (403 otherwise). Label values such as workflow types are tenants' own words.
    """
    _allow_scrape(request)
    try:
        ready = await asyncio.wait_for(_schema_revision(request), READY_TIMEOUT_S) == (
            request.app.state.schema_head
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        ready = False
    listening = request.app.state.guards.keys.listening
    body, content_type = metrics.render(database_ready=ready, listener_up=listening)
    return Response(body, media_type=content_type)
