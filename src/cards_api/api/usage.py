"""Usage routes: record a workflow's use of a card, list the events, summarise them."""

from __future__ import annotations

import re
import time
from datetime import UTC
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BeforeValidator

from cards_api import limits, metrics
from cards_api.api.cards import JSON, Cursor, Limit
from cards_api.api.deps import json_body, tenant_session
from cards_api.api.openapi import header, json_request, problems
from cards_api.auth import Scope
from cards_api.domain import render, usage
from cards_api.domain.schemas import GroupBy, UsageEvents, UsageRequest, UsageResponse, UsageSummary

router = APIRouter(prefix="/api/v1", tags=["usage"])

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339(value: object) -> object:
    # pydantic would also take "0.5" as a Unix timestamp; the contract says RFC 3339.
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError(
            "must be an RFC 3339 date-time with a time zone, e.g. 2025-10-27T10:30:00Z"
        )
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]

EVENT_RECORDED = "X-Event-Recorded"


@router.post(
    "/cards/{card_id}/usage",
    response_model=UsageResponse,
    responses={
        200: {
            "headers": {
                EVENT_RECORDED: header(
                    "true when this call recorded the workflow's first use of the card",
                    {"type": "string", "enum": ["true", "false"]},
                )
            }
        },
        **problems(400, 401, 403, 404, 413, 415, 422),
    },
    openapi_extra=json_request(UsageRequest),
)
async def track_usage(request: Request, card_id: UUID) -> Response:
    """Record that a workflow run used the card: one event per (workflow_id, card), and
    `usage_count` + 1 on every call."""
    async with tenant_session(request, Scope.USAGE_WRITE) as session:
        body = await json_body(request, UsageRequest)
        row = await usage.track(
            session.conn, tenant_id=session.tenant_id, card_id=card_id, request=body
        )
        recorded = bool(row["event_recorded"])

        def count() -> None:
            metrics.USAGE_WRITE_DURATION.observe(time.perf_counter() - session.started)
            if recorded:
                metrics.record_usage_event(row["card_type"], body.workflow_type)

        session.after_commit.append(count)
    payload = render.dumps(
        {
            "card_id": card_id,
            "usage_count": row["usage_count"],
            "last_used_at": row["last_used_at"],
            "event_recorded": recorded,
        }
    )
    return Response(
        payload, media_type=JSON, headers={EVENT_RECORDED: "true" if recorded else "false"}
    )


@router.get(
    "/cards/{card_id}/usage",
    response_model=UsageEvents,
    responses=problems(400, 401, 403, 404, 422),
)
async def usage_events(
    request: Request,
    card_id: UUID,
    limit: Limit = limits.DEFAULT_PAGE_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The card's usage events, newest first."""
    async with tenant_session(request, Scope.CARDS_READ) as session:
        page = await usage.events(
            session.conn, tenant_id=session.tenant_id, card_id=card_id, limit=limit, cursor=cursor
        )
    payload = render.dumps(
        {"events": [render.event(row) for row in page.rows], "next_cursor": page.next_cursor}
    )
    return Response(payload, media_type=JSON)


@router.get("/usage/summary", response_model=UsageSummary, responses=problems(400, 401, 403, 422))
async def usage_summary(
    request: Request,
    group_by: Annotated[GroupBy, Query(description="what to count events by")] = GroupBy.CARD_TYPE,
    since: Annotated[
        Instant | None, Query(description="events at or after this instant (RFC 3339)")
    ] = None,
    until: Annotated[
        Instant | None, Query(description="events before this instant (RFC 3339)")
    ] = None,
) -> Response:
    """Usage events counted by card type, workflow type or card."""
    since = since.astimezone(UTC) if since is not None else None
    until = until.astimezone(UTC) if until is not None else None
    async with tenant_session(request, Scope.CARDS_READ) as session:
        rows = await usage.summary(
            session.conn, tenant_id=session.tenant_id, group_by=group_by, since=since, until=until
        )
    payload = render.dumps(
        {
            "group_by": group_by.value,
            "since": since,
            "until": until,
            "groups": [{"key": row["key"], "events": row["events"]} for row in rows],
        }
    )
    return Response(payload, media_type=JSON)
