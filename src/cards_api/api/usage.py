"""Usage routes: record a workflow's use of a card, list the events, summarise them."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from cards_api import limits, metrics
from cards_api.api.bodies import json_body
from cards_api.api.openapi import header, json_request, problems
from cards_api.api.params import Cursor, Limit
from cards_api.api.responses import card_rows_response, json_response
from cards_api.api.security import CardsRead, UsageWrite
from cards_api.api.transaction import tenant_session
from cards_api.domain import render, usage
from cards_api.domain.responses import UsageEvents, UsageResponse, UsageSummary
from cards_api.domain.schemas import GroupBy, UsageRequest

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


def _utc(value: datetime) -> datetime:
    # 0001-01-01T00:00:00+05:00 is a valid RFC 3339 instant that UTC cannot represent.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "is outside the range of representable instants (years 1-9999 UTC)"
        ) from None


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_utc)]

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
async def track_usage(request: Request, principal: UsageWrite, card_id: UUID) -> Response:
    """Record that a workflow run used the card: one event per (workflow_id, card), and
    `usage_count` + 1 on every call."""
    body = await json_body(request, UsageRequest)
    async with tenant_session(request, principal) as session:
        row = await usage.track(
            session.conn, tenant_id=session.tenant_id, card_id=card_id, request=body
        )
        recorded = bool(row["event_recorded"])
        session.after_commit.append(
            lambda: metrics.record_usage(
                card_type=row["card_type"],
                workflow_type=body.workflow_type,
                tenant_id=session.tenant_id,
                recorded=recorded,
                seconds=time.perf_counter() - session.started,
            )
        )
    payload = {
        "card_id": card_id,
        "usage_count": row["usage_count"],
        "last_used_at": row["last_used_at"],
        "event_recorded": recorded,
    }
    return json_response(payload, headers={EVENT_RECORDED: "true" if recorded else "false"})


@router.get(
    "/cards/{card_id}/usage",
    response_model=UsageEvents,
    responses=problems(400, 401, 403, 404, 422),
)
async def usage_events(
    request: Request,
    principal: CardsRead,
    card_id: UUID,
    limit: Limit = limits.DEFAULT_PAGE_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The card's usage events, newest first."""
    return await card_rows_response(
        request, principal, card_id, usage.EVENTS, limit, cursor, ("events", render.event)
    )


@router.get("/usage/summary", response_model=UsageSummary, responses=problems(400, 401, 403, 422))
async def usage_summary(
    request: Request,
    principal: CardsRead,
    group_by: Annotated[GroupBy, Query(description="what to count events by")] = GroupBy.CARD_TYPE,
    since: Annotated[
        Instant | None, Query(description="events at or after this instant (RFC 3339)")
    ] = None,
    until: Annotated[
        Instant | None, Query(description="events before this instant (RFC 3339)")
    ] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=limits.MAX_SUMMARY_GROUPS,
            description="at most this many groups, the largest first "
            f"(at most {limits.MAX_SUMMARY_GROUPS}); `truncated` says whether more exist",
        ),
    ] = limits.DEFAULT_SUMMARY_GROUPS,
) -> Response:
    """Usage events counted by card type, workflow type or card: the `limit` largest groups."""
    async with tenant_session(request, principal) as session:
        rows, truncated = await usage.summary(
            session.conn,
            tenant_id=session.tenant_id,
            group_by=group_by,
            since=since,
            until=until,
            limit=limit,
        )
    return json_response(
        {
            "group_by": group_by.value,
            "since": since,
            "until": until,
            "groups": [{"key": row["key"], "events": row["events"]} for row in rows],
            "truncated": truncated,
        }
    )
