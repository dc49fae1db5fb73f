"""Database rows to JSON bytes, without a detour through pydantic.

`jsonb` arrives from asyncpg as JSON text and is embedded as-is (`orjson.Fragment`), so card
content is never parsed and re-serialised on the way out. UTC datetimes are encoded natively
by orjson and end in `Z`; asyncpg's own UUID class is not `uuid.UUID` to orjson, hence `str`.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from cards_api.db.types import Row

_OPTIONS = orjson.OPT_UTC_Z


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTIONS)


def card(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "tenant_id": str(row["tenant_id"]),
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


def scored_card(row: Row) -> dict[str, Any]:
    """A card found by a query, with its `score` (higher is better, comparable within one
    response)."""
    return {**card(row), "score": float(row["score"])}


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


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def readable(value: Any, indent: int = 0) -> str:
    """Card content as prompt text: one `key: value` line per field, nested fields indented,
    lists of plain values joined with commas. Fields come in the order PostgreSQL keeps them
    (`jsonb`: shorter keys first), the same for every call."""
    pad = "  " * indent
    if not isinstance(value, dict):
        return pad + _scalar(value)
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines += [f"{pad}{key}:", readable(item, indent + 1)] if item else [f"{pad}{key}:"]
        elif isinstance(item, list) and any(isinstance(x, dict | list) for x in item):
            lines.append(f"{pad}{key}:")
            lines += [f"{pad}- {readable(x).strip()}".replace("\n", "\n  " + pad) for x in item]
        elif isinstance(item, list):
            lines.append(f"{pad}{key}: " + ", ".join(_scalar(x) for x in item))
        else:
            lines.append(f"{pad}{key}: {_scalar(item)}")
    return "\n".join(line for line in lines if line.strip())
