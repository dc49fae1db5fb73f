"""What every route shares: the tenant-bound transaction, JSON bodies, preconditions.

A route runs three steps, in this order: `authorize` (who calls, for which tenant, with which
scope; it may look a key up, but holds no connection afterwards), then `json_body` (the body was
already read whole by the middleware; here it is parsed and validated), then `tenant_session`,
the one place a request's transaction begins and ends: it binds the transaction to the tenant
(row-level security), hands the connection to the route, and commits when the route's block
ends, before the response is sent, or rolls back on any error. Nothing below it commits. So a
pool connection is taken only for a request that is authorized and valid, and never waits on
the client.

Routes call these explicitly rather than as FastAPI dependencies with `yield`: the order of
checks stays visible, and the request path skips the dependency machinery's exit stacks and
cancel scopes, which cost more than the query itself.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from uuid import UUID

import asyncpg
from fastapi import Request
from pydantic import BaseModel, ValidationError

from cards_api import tenancy
from cards_api.auth import Scope
from cards_api.db.queries.tenancy import abandon, commit
from cards_api.db.types import Connection
from cards_api.errors import BadRequest, UnsupportedMediaType, validation_problem
from cards_api.settings import Settings
from cards_api.tenancy import Principal

POOL_ACQUIRE_TIMEOUT_S = 5.0
_VERSION = re.compile(r"[0-9]{1,10}")

M = TypeVar("M", bound=BaseModel)


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


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _client(request: Request) -> bytes:
    client = request.scope.get("client")
    return str(client[0]).encode() if client else b"?"


async def authorize(request: Request, scope: Scope) -> Principal:
    """Who calls, for which tenant, allowed to do `scope`; holds no connection once it returns.

    Runs before the body is parsed, so an unauthenticated caller learns nothing about bodies.
    """
    state = request.app.state
    claim = tenancy.read_claim(request.headers, state.settings.auth_mode)
    principal = await tenancy.authenticate(
        claim,
        pool=state.pool,
        guards=state.guards,
        client=_client(request),
        acquire_timeout=POOL_ACQUIRE_TIMEOUT_S,
    )
    request.state.tenant_id = str(principal.tenant_id)
    principal.require(scope)
    return principal


@contextlib.asynccontextmanager
async def tenant_session(request: Request, principal: Principal) -> AsyncIterator[TenantSession]:
    """The request's one transaction, bound to the principal's tenant.

    Enter it only once the body has been read and validated: from here a pool connection is
    held, and nothing inside may wait on the client.
    """
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as conn:
        started = time.perf_counter()
        try:
            await tenancy.begin(conn, principal)
            session = TenantSession(conn=conn, principal=principal, started=started)
            yield session
        except BaseException:
            await abandon(conn)
            raise
        await commit(conn)
    for hook in session.after_commit:
        hook()


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() in ("utf-8", "utf8")
    return True


async def json_body(request: Request, model: type[M]) -> M:
    """The body as `model`: 415 unless JSON, 400 if unreadable, 422 if it breaks the contract."""
    if not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_problem(exc.errors(include_url=False), prefix=("body",)) from None


def if_match_versions(if_match: str | None) -> list[int] | None:
    """Versions the client says it is changing (`"3"`, `W/"3"`, a list, or `*` for any)."""
    if if_match is None or if_match.strip() in ("", "*"):
        return None
    versions = []
    for tag in if_match.split(","):
        text = tag.strip().removeprefix("W/").strip('"')
        # ASCII digits only: str.isdigit() also accepts "²" and "١٢", which int() refuses.
        if not _VERSION.fullmatch(text) or not 0 < int(text) < 2**31:
            raise BadRequest('If-Match must hold ETags of this API, such as "3"')
        versions.append(int(text))
    return versions


def etag(version: int) -> str:
    return f'"{version}"'
