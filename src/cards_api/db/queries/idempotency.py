"""Idempotency records: a key's request fingerprint and the response it produced."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from cards_api.db.types import Connection

# Claim the key, or reclaim it when its record has expired. While another transaction holds a
# fresh claim on the same key this statement waits for it to finish (bounded by lock_timeout):
# if that one commits, nothing is returned and the caller replays its response.
RESERVE = """
INSERT INTO idempotency_records (tenant_id, key, fingerprint, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (tenant_id, key) DO UPDATE
SET fingerprint = EXCLUDED.fingerprint,
    response_status = NULL,
    response_body = NULL,
    created_at = now(),
    expires_at = EXCLUDED.expires_at
WHERE idempotency_records.expires_at <= now()
RETURNING true
"""


async def reserve(
    conn: Connection, *, tenant_id: UUID, key: str, fingerprint: bytes, ttl_seconds: int
) -> bool:
    return bool(await conn.fetchval(RESERVE, tenant_id, key, fingerprint, float(ttl_seconds)))


async def find(conn: Connection, *, tenant_id: UUID, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT fingerprint, response_status, response_body FROM idempotency_records
        WHERE tenant_id = $1 AND key = $2
        """,
        tenant_id,
        key,
    )


COMPLETE = """
UPDATE idempotency_records SET response_status = $3, response_body = $4
WHERE tenant_id = $1 AND key = $2
"""


async def complete(
    conn: Connection, *, tenant_id: UUID, key: str, status: int, body: bytes
) -> None:
    await conn.execute(COMPLETE, tenant_id, key, status, body)


async def purge_expired(conn: Connection, *, batch: int) -> int:
    """Delete up to `batch` expired records of any tenant (a SECURITY DEFINER function)."""
    deleted = await conn.fetchval("SELECT cards_purge_expired_idempotency($1)", batch)
    return int(deleted or 0)
