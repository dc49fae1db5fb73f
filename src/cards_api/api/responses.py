"""JSON responses built from database rows (see `domain/render.py` for why not pydantic)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi.responses import Response

from cards_api.api.params import etag
from cards_api.domain import render
from cards_api.pagination import Page

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
