"""Who calls, for which tenant, with which scope: the routes' one FastAPI dependency.

A route names what it needs in its signature (`principal: CardsWrite`), so its scope is read
where the route is. The dependency runs before the route's query and path parameters are
validated and before its body is read: an unauthenticated caller learns nothing about what a
valid request looks like. It may look a key up in a short transaction of its own, but holds no
connection once it returns (`tenancy.authenticate`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from cards_api import tenancy
from cards_api.auth import Scope
from cards_api.tenancy import Principal

POOL_ACQUIRE_TIMEOUT_S = 5.0


def _client(request: Request) -> bytes:
    client = request.scope.get("client")
    return str(client[0]).encode() if client else b"?"


async def authorize(request: Request, scope: Scope) -> Principal:
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


_SCOPE_ATTRIBUTE = "cards_api_scope"


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    async def principal(request: Request) -> Principal:
        return await authorize(request, scope)

    setattr(principal, _SCOPE_ATTRIBUTE, scope)  # read by `required_scope`
    return principal


def required_scope(dependency: object) -> Scope | None:
    """The scope a dependency made by `require` demands (None for any other dependency): how
    `api/direct.py` serves a route without FastAPI's solver yet with the route's own scope."""
    scope = getattr(dependency, _SCOPE_ATTRIBUTE, None)
    return scope if isinstance(scope, Scope) else None


CardsRead = Annotated[Principal, Depends(require(Scope.CARDS_READ))]
CardsWrite = Annotated[Principal, Depends(require(Scope.CARDS_WRITE))]
UsageWrite = Annotated[Principal, Depends(require(Scope.USAGE_WRITE))]
