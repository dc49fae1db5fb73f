"""Database rows to JSON bytes, without a detour through pydantic.

`jsonb` arrives from asyncpg as JSON text and is embedded as-is (`orjson.Fragment`), so card
content is never parsed and re-serialised on the way out. UUIDs and UTC datetimes are encoded
natively by orjson; timestamps end in `Z`.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

_OPTIONS = orjson.OPT_UTC_Z


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTIONS)


def card(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "card_type": row["card_type"],
        "title": row["title"],
        "content": orjson.Fragment(row["content"]),
        "tags": row["tags"],
        "external_ref": row["external_ref"],
        "version": row["version"],
        "usage_count": row["usage_count"],
        "last_used_at": row["last_used_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def version(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "version": row["version"],
        "title": row["title"],
        "content": orjson.Fragment(row["content"]),
        "tags": row["tags"],
        "created_at": row["created_at"],
    }


def event(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "workflow_id": row["workflow_id"],
        "workflow_type": row["workflow_type"],
        "session_id": row["session_id"],
        "created_at": row["created_at"],
    }
