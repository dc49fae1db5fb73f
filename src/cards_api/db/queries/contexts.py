"""Assembled contexts, kept for audit until they expire."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import orjson

from cards_api.db.types import Connection

CONTEXT_COLUMNS = (
    "id, task, token_budget, tokens, tokenizer, format, cards, omitted, workflow_id, "
    "workflow_type, created_at"
)


async def insert_context(
    conn: Connection,
    *,
    tenant_id: UUID,
    context_id: UUID,
    task: str,
    token_budget: int,
    tokens: int,
    tokenizer: str,
    format: str,
    cards: list[dict[str, object]],
    omitted: list[dict[str, object]],
    workflow_id: str | None,
    workflow_type: str | None,
    ttl_seconds: int,
) -> None:
    await conn.execute(
        """
        INSERT INTO contexts (tenant_id, id, task, token_budget, tokens, tokenizer, format,
                              cards, omitted, workflow_id, workflow_type, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11,
                now() + make_interval(secs => $12))
        """,
        tenant_id,
        context_id,
        task,
        token_budget,
        tokens,
        tokenizer,
        format,
        orjson.dumps(cards).decode(),
        orjson.dumps(omitted).decode(),
        workflow_id,
        workflow_type,
        ttl_seconds,
    )


async def get_context(
    conn: Connection, *, tenant_id: UUID, context_id: UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {CONTEXT_COLUMNS} FROM contexts "
        "WHERE tenant_id = $1 AND id = $2 AND expires_at > now()",
        tenant_id,
        context_id,
    )


async def purge_expired(conn: Connection, *, batch: int) -> int:
    """Delete up to `batch` expired contexts of any tenant (a SECURITY DEFINER function)."""
    deleted = await conn.fetchval("SELECT cards_purge_expired_contexts($1)", batch)
    return int(deleted or 0)
