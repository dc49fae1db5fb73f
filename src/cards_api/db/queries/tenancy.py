"""Transactions bound to a tenant, for row-level security.

A statement runs bound to a tenant in one of two ways: inside a transaction opened by
`begin_for_tenant`, or as one of revisions 0010's and 0011's functions (`cards_by_ids`,
`cards_ranked`, `cards_search_current`, `cards_active_key`), which bind their own statement's
transaction to the tenant they are given and so need no transaction block around them: one
round trip instead of three. Any other statement outside a bound transaction sees no tenant's
rows (the policies fail closed).
"""

from __future__ import annotations

from uuid import UUID

from cards_api.db.types import Connection

# `true` makes the setting transaction-local: PostgreSQL forgets it at COMMIT or ROLLBACK, so a
# pooled connection can never carry one request's tenant into the next.
SET_TENANT = "SELECT set_config('cards.tenant_id', $1::text, true)"

# BEGIN and the tenant in one round trip (the simple-query protocol takes several statements in
# one message but no parameters). The tenant is spliced in as text, which is safe only because
# it is the canonical form of a parsed `uuid.UUID`: hex digits and dashes, nothing else.
_BEGIN_FOR_TENANT = "BEGIN{mode}; SELECT set_config('cards.tenant_id', '{tenant}', true)"


async def begin_for_tenant(conn: Connection, *, tenant_id: UUID, snapshot: bool = False) -> None:
    """With `snapshot`, a read-only transaction whose statements all see one snapshot
    (REPEATABLE READ): what a search index is loaded in, with the generation it is loaded at."""
    assert isinstance(tenant_id, UUID)
    mode = " ISOLATION LEVEL REPEATABLE READ READ ONLY" if snapshot else ""
    await conn.execute(_BEGIN_FOR_TENANT.format(mode=mode, tenant=tenant_id))


async def ensure_bound(conn: Connection, *, tenant_id: UUID) -> None:
    """Open a transaction bound to the tenant unless one is open: in a request's deferred session
    (`api/transaction.py`) the first statement that does not bind itself opens it. An open one is
    the request's own, bound to its own tenant when it began."""
    if not conn.is_in_transaction():
        await begin_for_tenant(conn, tenant_id=tenant_id)


async def commit(conn: Connection) -> None:
    await conn.execute("COMMIT")


async def rollback(conn: Connection) -> None:
    await conn.execute("ROLLBACK")


async def set_tenant(conn: Connection, *, tenant_id: UUID) -> None:
    """Bind an already open transaction (maintenance and tests)."""
    await conn.execute(SET_TENANT, str(tenant_id))


async def abandon(conn: Connection) -> None:
    """Roll back after an error; a connection in any doubtful state is closed, never reused."""
    if conn.is_closed():
        return
    try:
        if conn.is_in_transaction():
            await rollback(conn)
    except Exception:
        # The server went away mid-statement, or the protocol is out of step: a connection
        # like that must not serve the next request (the pool opens a fresh one), and the
        # error the request already has is the one to answer with.
        conn.terminate()
    except BaseException:
        conn.terminate()
        raise
