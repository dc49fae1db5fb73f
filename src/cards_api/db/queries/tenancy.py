"""Binding a transaction to a tenant for row-level security."""

from __future__ import annotations

from uuid import UUID

from cards_api.db.types import Connection

# `true` makes the setting transaction-local: PostgreSQL forgets it at COMMIT or ROLLBACK, so a
# pooled connection can never carry one request's tenant into the next.
SET_TENANT = "SELECT set_config('cards.tenant_id', $1::text, true)"


async def set_tenant(conn: Connection, *, tenant_id: UUID) -> None:
    await conn.execute(SET_TENANT, str(tenant_id))
