"""Usage rules: record that a workflow run used a card, list those events, count them."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from cards_api.db.queries import cards as cards_q
from cards_api.db.queries import usage as usage_q
from cards_api.db.types import Connection
from cards_api.domain.cards import card_not_found
from cards_api.domain.schemas import GroupBy, UsageRequest
from cards_api.errors import ValidationFailed
from cards_api.pagination import Page, decode_time_id, page_of, time_id_cursor


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


async def events(
    conn: Connection, *, tenant_id: UUID, card_id: UUID, limit: int, cursor: str | None
) -> Page[asyncpg.Record]:
    if not await cards_q.card_exists(conn, tenant_id=tenant_id, card_id=card_id):
        raise card_not_found(card_id)
    rows = await usage_q.events_page(
        conn,
        tenant_id=tenant_id,
        card_id=card_id,
        before=decode_time_id(cursor) if cursor else None,
        limit=limit + 1,
    )
    return page_of(rows, limit, time_id_cursor)


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
