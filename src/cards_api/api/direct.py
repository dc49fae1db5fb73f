"""Routes served directly: the same endpoints, without FastAPI's per-request routing and
dependency machinery.

Measured in-process (docs/performance.md), FastAPI's middleware stack, router and dependency
solver cost about 40% of the CPU of a retrieve by id, more than the three database round trips.
Routes are still declared with FastAPI (`api/cards.py`, …): that is their contract and their
OpenAPI document, and every request this module does not take goes through FastAPI as before.

A route is served directly when its signature is simple enough to be called without the solver:
a `Request`, one principal dependency (`api/security.py`, its scope read from the dependency),
and path, query and header parameters. Those parameters are validated by FastAPI's own
`request_params_to_args`, after authentication, exactly as the solver does, so the answers and
their order are the same either way (`tests/integration/test_direct_routes.py` sends the same
requests both ways and compares). A route with any other dependency (If-Match) or a body
parameter stays with FastAPI.

Errors raised by the endpoint are rendered by the application's own exception handlers
(`problems.py`), looked up by the exception's class as Starlette does; anything else propagates
to the request middleware, which turns it into the logged 500. FastAPI's `dependency_overrides`
do not reach these routes (the service uses none).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cards_api.api.security import authorize, required_scope
from cards_api.auth import Scope as Permission

SCOPE_KEY: Final = "cards_api.direct"
"""Where `match` leaves the matched route and its path parameters for `serve`."""

Handler = Callable[[Request, Exception], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class DirectRoute:
    route: APIRoute
    permission: Permission
    principal_name: str
    request_name: str
    dependant: Dependant

    @property
    def static(self) -> bool:
        return not self.dependant.path_params


def _direct(route: APIRoute) -> DirectRoute | None:
    """The route as a direct one, or None when it needs FastAPI's solver."""
    dependant = route.dependant
    if (
        len(dependant.dependencies) != 1
        or dependant.body_params
        or dependant.cookie_params
        or dependant.request_param_name is None
        or dependant.websocket_param_name is not None
        or dependant.background_tasks_param_name is not None
        or dependant.response_param_name is not None
        or dependant.security_scopes_param_name is not None
    ):
        return None
    (principal,) = dependant.dependencies
    permission = required_scope(principal.call)
    if permission is None or principal.name is None:
        return None
    return DirectRoute(
        route=route,
        permission=permission,
        principal_name=principal.name,
        request_name=dependant.request_param_name,
        dependant=dependant,
    )


class DirectRoutes:
    """The routes of `routers` that can be served directly, matched like Starlette matches."""

    def __init__(self, routers: Sequence[APIRouter]) -> None:
        self.static: dict[tuple[str, str], DirectRoute] = {}
        self.templated: dict[str, list[tuple[re.Pattern[str], DirectRoute]]] = {}
        """By method, in declaration order (Starlette's order of matching)."""
        for router in routers:
            for route in router.routes:
                if not isinstance(route, APIRoute) or (direct := _direct(route)) is None:
                    continue
                for method in route.methods or ():
                    if direct.static:
                        self.static[(method, route.path)] = direct
                    else:
                        self.templated.setdefault(method, []).append((route.path_regex, direct))

    def paths(self) -> set[tuple[str, str]]:
        """(method, path template) of every route served directly."""
        return {(m, d.route.path) for (m, _), d in self.static.items()} | {
            (m, d.route.path) for m, routes in self.templated.items() for _, d in routes
        }

    def match(self, scope: Scope) -> bool:
        """Claim the request if a direct route takes it (leaving the match in the scope)."""
        if scope.get("root_path"):
            return False  # mounted under a prefix: Starlette's own path handling applies
        method: str = scope["method"]
        path: str = scope["path"]
        direct = self.static.get((method, path))
        if direct is not None:
            scope[SCOPE_KEY] = (direct, {})
            return True
        for pattern, candidate in self.templated.get(method, ()):
            if (found := pattern.match(path)) is not None:
                scope[SCOPE_KEY] = (candidate, found.groupdict())
                return True
        return False


def _handler(app: FastAPI, exc: Exception) -> Handler | None:
    """The application's handler for `exc`, by the exception's class hierarchy."""
    for cls in type(exc).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None:
            return handler  # type: ignore[return-value]
    return None


def serve(app: FastAPI) -> ASGIApp:
    """The ASGI app that answers a request `DirectRoutes.match` claimed."""

    async def direct(scope: Scope, receive: Receive, send: Send) -> None:
        route, path_params = scope.pop(SCOPE_KEY)
        scope["app"] = app
        scope["route"] = route.route  # the metric label: the route's template, as via FastAPI
        scope["path_params"] = path_params
        scope["endpoint"] = route.route.endpoint
        request = Request(scope, receive, send)
        try:
            response = await _call(route, request)
        except Exception as exc:
            handler = _handler(app, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    return direct


async def _call(route: DirectRoute, request: Request) -> Response:
    principal = await authorize(request, route.permission)
    dependant = route.dependant
    values: dict[str, Any] = {route.principal_name: principal, route.request_name: request}
    errors: list[Any] = []
    for fields, received in (
        (dependant.path_params, request.path_params),
        (dependant.query_params, request.query_params),
        (dependant.header_params, request.headers),
    ):
        if fields:
            found, failed = request_params_to_args(fields, received)
            values.update(found)
            errors += failed
    if errors:
        raise RequestValidationError(errors)
    response: Response = await route.route.endpoint(**values)
    return response
