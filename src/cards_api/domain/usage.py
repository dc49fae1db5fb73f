"""Usage rules: record that a workflow run used a card, list those events, count them."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from cards_api.db.queries import usage as usage_q
from cards_api.db.types import Connection
from cards_api.domain.cards import CardRows, card_not_found
from cards_api.domain.schemas import GroupBy, UsageRequest
from cards_api.errors import ValidationFailed
from cards_api.pagination import decode_time_id, time_id_cursor


async def track(
    conn: Connection, *, tenant_id: UUID, card_id: UUID, request: UsageRequest
) -> asyncpg.Record:
    """Count the use; record an event only for the first use by this workflow run."""
    row = await usage_q.track_usage(
        conn,
        tenant_id=tenant_id,
        card_id=card_id,
        workflow_id=request.workflow_id,
        workflow_type=request.workflow_type,
        session_id=request.session_id,
    )
    if row is None:
        raise card_not_found(card_id)
    return row


EVENTS = CardRows(
    decode=decode_time_id,
    fetch=lambda conn, tenant_id, card_id, before, limit: usage_q.events_page(
        conn, tenant_id=tenant_id, card_id=card_id, before=before, limit=limit
    ),
    cursor_after=time_id_cursor,
)


async def summary(
    conn: Connection,
    *,
    tenant_id: UUID,
    group_by: GroupBy,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> tuple[list[asyncpg.Record], bool]:
    """The `limit` largest groups, and whether there were more (the response says `truncated`)."""
    if since is not None and until is not None and since >= until:
        raise ValidationFailed.at(("query", "until"), "must be later than since")
    rows = await usage_q.summary(
        conn,
        tenant_id=tenant_id,
        group_by=group_by.value,
        since=since,
        until=until,
        limit=limit + 1,
    )
    return rows[:limit], len(rows) > limit
