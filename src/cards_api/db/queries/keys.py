"""API keys: only the SHA-256 of a key is ever stored."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from cards_api.db.types import Connection

KEY_COLUMNS = "id, tenant_id, name, key_hint, scopes, created_at, revoked_at"
REVOCATION_CHANNEL = "cards_api_key_revoked"  # sent by a trigger (0006), heard by keycache


async def insert_key(
    conn: Connection,
    *,
    tenant_id: UUID,
    name: str,
    key_hash: bytes,
    key_hint: str,
    scopes: list[str],
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        INSERT INTO api_keys (tenant_id, name, key_hash, key_hint, scopes)
        VALUES ($1, $2, $3, $4, $5)
        RETURNING {KEY_COLUMNS}
        """,
        tenant_id,
        name,
        key_hash,
        key_hint,
        scopes,
    )
    assert row is not None
    return row


async def list_keys(conn: Connection, *, tenant_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id",
        tenant_id,
    )


async def revoke_key(conn: Connection, *, key_id: UUID) -> asyncpg.Record | None:
    """Revoke by id alone: an administrator holds the id, not the tenant (admin role only)."""
    # A trigger (revision 0006) sends the notice that reaches every API process's key cache
    # when this transaction commits, as it does for a revocation made by hand in SQL.
    return await conn.fetchrow(
        f"""
        UPDATE api_keys SET revoked_at = now()
        WHERE id = $1 AND revoked_at IS NULL
        RETURNING {KEY_COLUMNS}
        """,
        key_id,
    )


async def find_active_key(
    conn: Connection, *, tenant_id: UUID, key_hash: bytes
) -> asyncpg.Record | None:
    """An active key's hash and scopes, or None: one statement that binds itself to the key's
    tenant (revision 0011), outside any transaction block or inside one of that tenant."""
    return await conn.fetchrow("SELECT * FROM cards_active_key($1, $2)", tenant_id, key_hash)


async def key_tag_secret(conn: Connection) -> bytes:
    """The deployment's secret for key tags (app and admin roles may read it)."""
    value = await conn.fetchval("SELECT value FROM deployment_secrets WHERE name = 'key_tag'")
    if value is None:
        raise RuntimeError("the database has no key_tag secret; run `cards-api migrate`")
    return bytes(value)
