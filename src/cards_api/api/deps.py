"""Request dependencies: the tenant-bound transaction, scopes, JSON bodies, preconditions.

`tenant_session` is the one place a request's transaction begins and ends: it authenticates,
binds the transaction to the tenant (row-level security), hands the connection to the route,
and commits when the route returns, before the response is sent, or rolls back on any error.
Nothing below it commits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar
from uuid import UUID

import asyncpg
from fastapi import Depends, Header, Request
from pydantic import BaseModel, ValidationError

from cards_api import tenancy
from cards_api.auth import Scope
from cards_api.db.types import Connection
from cards_api.errors import BadRequest, UnsupportedMediaType, validation_problem
from cards_api.settings import Settings
from cards_api.tenancy import Principal

POOL_ACQUIRE_TIMEOUT_S = 5.0

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


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def tenant_session(request: Request) -> AsyncIterator[TenantSession]:
    claim = tenancy.read_claim(request.headers, get_settings(request).auth_mode)
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as conn:
        started = time.perf_counter()
        async with conn.transaction():
            principal = await tenancy.bind(conn, claim, request.app.state.key_cache)
            request.state.tenant_id = str(principal.tenant_id)
            session = TenantSession(conn=conn, principal=principal, started=started)
            yield session
    for hook in session.after_commit:
        hook()


def _scoped(scope: Scope) -> Callable[[TenantSession], Awaitable[TenantSession]]:
    async def require_scope(
        session: Annotated[TenantSession, Depends(tenant_session, scope="function")],
    ) -> TenantSession:
        session.principal.require(scope)
        return session

    return require_scope


ReadSession = Annotated[TenantSession, Depends(_scoped(Scope.CARDS_READ))]
WriteSession = Annotated[TenantSession, Depends(_scoped(Scope.CARDS_WRITE))]
UsageSession = Annotated[TenantSession, Depends(_scoped(Scope.USAGE_WRITE))]
AppSettings = Annotated[Settings, Depends(get_settings)]


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return False
    charset = next(
        (
            p.split("=", 1)[1].strip().strip('"').lower()
            for p in params.split(";")
            if "=" in p and p.split("=", 1)[0].strip().lower() == "charset"
        ),
        "utf-8",
    )
    return charset in ("utf-8", "utf8")


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency reading the body as `model`: 415 unless JSON, 400 if unreadable, else 422.

    Declared after the session in a route's signature, it runs after authentication, so an
    unauthenticated caller learns nothing about what a valid body looks like.
    """

    async def read_json_body(request: Request) -> M:
        if not _is_json(request.headers.get("content-type")):
            raise UnsupportedMediaType(
                "the request body must be JSON (Content-Type: application/json)"
            )
        raw = await request.body()
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_problem(exc.errors(include_url=False), prefix=("body",)) from None

    read_json_body.__name__ = f"read_{model.__name__}"
    return read_json_body


def _if_match(if_match: Annotated[str | None, Header(alias="If-Match")] = None) -> list[int] | None:
    """Versions the client says it is changing (`"3"`, `W/"3"`, a list, or `*` for any)."""
    if if_match is None or if_match.strip() == "*":
        return None
    versions = []
    for tag in if_match.split(","):
        text = tag.strip().removeprefix("W/").strip('"')
        if not text.isdigit() or not 0 < int(text) < 2**31:
            raise BadRequest('If-Match must hold ETags of this API, such as "3"')
        versions.append(int(text))
    return versions


IfMatch = Annotated[list[int] | None, Depends(_if_match)]


def etag(version: int) -> str:
    return f'"{version}"'
