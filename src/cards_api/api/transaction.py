"""The request's one transaction, bound to its tenant: the only place one ends.

`tenant_session` binds the transaction to the tenant (row-level security), hands the connection
to the route, and commits when the route's block ends, before the response is sent, or rolls
back on any error. Nothing below it commits. A route enters it only once it is authorized and
its body is read and valid, so a pool connection never waits on a client.

A `deferred` session begins no transaction: a read that is one self-binding statement
(`db/queries/tenancy.py`) runs alone, one round trip instead of three, and the first statement
that is not self-binding opens the bound transaction (`ensure_bound`), which ends here as any.

It is a context manager rather than a FastAPI dependency with `yield`: the request path skips
the dependency machinery's exit stacks and cancel scopes, which cost more than the query itself,
and the transaction ends before the response is sent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from fastapi import Request

from cards_api import stalls, tenancy
from cards_api.api.security import POOL_ACQUIRE_TIMEOUT_S
from cards_api.db.queries.tenancy import abandon, commit
from cards_api.db.types import Connection
from cards_api.tenancy import Principal


@dataclass(slots=True)
class TenantSession:
    conn: Connection
    principal: Principal
    started: float
    """`time.perf_counter()` when the transaction began."""
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    """Run once the transaction has committed: what a rollback must not count is counted here."""

    @property
    def tenant_id(self) -> UUID:
        return self.principal.tenant_id


@contextlib.asynccontextmanager
async def tenant_session(
    request: Request, principal: Principal, *, deferred: bool = False
) -> AsyncIterator[TenantSession]:
    pool: asyncpg.Pool = request.app.state.pool
    hooks: list[Callable[[], None]] = []
    try:
        async with stalls.acquire(pool, timeout=POOL_ACQUIRE_TIMEOUT_S) as conn:
            session = TenantSession(
                conn=conn, principal=principal, started=time.perf_counter(), after_commit=hooks
            )
            try:
                if not deferred:
                    await tenancy.begin(conn, principal)
                yield session
            except BaseException:
                await abandon(conn)
                raise
            if conn.is_in_transaction():
                committing = time.perf_counter()
                await commit(conn)
                stalls.commit(time.perf_counter() - committing)
        for hook in hooks:
            hook()
    finally:
        # Hooks are closures over the session, which holds them: a reference cycle that only
        # the garbage collector would free, with the request's objects in it (a context's ~100
        # candidates and its text). Cleared, they go with the request: contexts under load
        # spent ~0.1 ms each in collections, and full ones paused a worker for up to ~10 ms
        # (docs/performance.md).
        hooks.clear()
