"""JSON responses built from database rows.

Routes declare their response models (`domain/schemas.py`) for the OpenAPI document but render
rows straight to JSON (`domain/render.py`): building a pydantic model per card and serialising
it again costs more than the query. Schemathesis checks every response against the declared
schema (`tests/e2e/test_contract_fuzzing.py`), so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg
from fastapi import Request
from fastapi.responses import Response

from cards_api.api.params import etag
from cards_api.api.transaction import tenant_session
from cards_api.domain import render
from cards_api.domain.cards import CardRows, page_of_card
from cards_api.pagination import Page
from cards_api.tenancy import Principal

JSON = "application/json"


def json_response(
    payload: Any, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        render.dumps(payload), status_code=status_code, media_type=JSON, headers=headers
    )


def card_response(row: asyncpg.Record) -> Response:
    """One card, its version as the ETag."""
    return json_response(render.card(row), headers={"ETag": etag(row["version"])})


def page_response(
    key: str, page: Page[asyncpg.Record], item: Callable[[asyncpg.Record], Any]
) -> Response:
    """A page of rows as `{key: [...], "next_cursor": ...}`."""
    return json_response({key: [item(row) for row in page.rows], "next_cursor": page.next_cursor})


async def card_rows_response(
    request: Request,
    principal: Principal,
    card_id: UUID,
    rows: CardRows[Any],
    limit: int,
    cursor: str | None,
    shape: tuple[str, Callable[[asyncpg.Record], Any]],
) -> Response:
    """A page of a card's versions or events, in the request's transaction: `shape` names the
    list's key and renders one row."""
    async with tenant_session(request, principal) as session:
        page = await page_of_card(
            session.conn,
            rows,
            tenant_id=session.tenant_id,
            card_id=card_id,
            limit=limit,
            cursor=cursor,
        )
    key, item = shape
    return page_response(key, page, item)
