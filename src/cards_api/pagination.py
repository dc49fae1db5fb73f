"""Opaque cursors for keyset pagination.

A cursor is the sort key of the last item of a page, as URL-safe base64 of a small JSON array.
Clients treat it as opaque; a cursor that does not decode is a 422 naming the parameter.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

import asyncpg
import orjson

from cards_api.errors import ValidationFailed

CURSOR_LOC = ("query", "cursor")

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Page(Generic[Row]):
    rows: list[Row]
    next_cursor: str | None


def page_of(rows: Sequence[Row], limit: int, cursor_after: Callable[[Row], str]) -> Page[Row]:
    """Cut a page from `limit + 1` fetched rows: the extra row only says another page exists."""
    if len(rows) <= limit:
        return Page(rows=list(rows), next_cursor=None)
    return Page(rows=list(rows[:limit]), next_cursor=cursor_after(rows[limit - 1]))


def _encode(parts: list[object]) -> str:
    raw = orjson.dumps(parts, option=orjson.OPT_UTC_Z)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(cursor: str) -> list[object]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValidationFailed.at(CURSOR_LOC, "invalid cursor") from None
    if not isinstance(parts, list):
        raise ValidationFailed.at(CURSOR_LOC, "invalid cursor")
    return parts


def encode_time_id(created_at: datetime, item_id: UUID) -> str:
    return _encode([created_at, str(item_id)])


def time_id_cursor(row: asyncpg.Record) -> str:
    """The cursor after a row sorted by (created_at, id)."""
    return encode_time_id(row["created_at"], row["id"])


def decode_time_id(cursor: str) -> tuple[datetime, UUID]:
    parts = _decode(cursor)
    try:
        stamp, item = parts
        created_at = datetime.fromisoformat(str(stamp))
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, UUID(str(item))
    except (ValueError, TypeError):
        raise ValidationFailed.at(CURSOR_LOC, "invalid cursor") from None


def encode_version(version: int) -> str:
    return _encode([version])


def decode_version(cursor: str) -> int:
    parts = _decode(cursor)
    if (
        len(parts) != 1
        or not isinstance(parts[0], int)
        or isinstance(parts[0], bool)
        or not 0 < parts[0] < 2**31
    ):
        raise ValidationFailed.at(CURSOR_LOC, "invalid cursor")
    return parts[0]
