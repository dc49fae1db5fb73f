"""The one place errors become responses: RFC 9457 `application/problem+json` with the
request's `trace_id`, for our own errors and for everything FastAPI, Starlette or asyncpg may
raise. Every error looks the same and none can leak a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from cards_api.errors import (
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
    validation_problem,
)
from cards_api.tracing import current_trace_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://cards-api.dev/problems/"

log = structlog.get_logger("cards_api.problems")


def problem_body(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: Sequence[Mapping[str, Any]] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "trace_id": current_trace_id.get(),
    }
    if errors is not None:
        body["errors"] = list(errors)
    return orjson.dumps(body)


def problem_response(exc: ProblemError) -> Response:
    body = problem_body(
        status=exc.status, slug=exc.slug, title=exc.title, detail=exc.detail, errors=exc.errors
    )
    return Response(
        body, status_code=exc.status, media_type=PROBLEM_MEDIA_TYPE, headers=exc.headers
    )


async def _on_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc)


async def _on_request_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_problem(list(exc.errors())))


async def _on_pydantic_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return problem_response(validation_problem(exc.errors(include_url=False)))


_HTTP_PROBLEMS: dict[int, type[ProblemError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


async def _on_http_exception(_: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the same problem+json shape."""
    assert isinstance(exc, StarletteHTTPException)
    cls = _HTTP_PROBLEMS.get(exc.status_code)
    if cls is None:
        body = problem_body(
            status=exc.status_code,
            slug="http-error",
            title=HTTPStatus(exc.status_code).phrase,
            detail=str(exc.detail),
        )
        return Response(
            body, status_code=exc.status_code, media_type=PROBLEM_MEDIA_TYPE, headers=exc.headers
        )
    detail = "no such resource" if cls is NotFound else str(exc.detail).lower()
    problem = cls(detail, headers=exc.headers)
    return problem_response(problem)


# Failures of the database itself (down, restarting, overloaded, too slow) are the server's
# problem and temporary: the client gets a 503 it may retry, never a 500 with a traceback.
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)


async def _on_unstorable_value(_: Request, exc: Exception) -> Response:
    # SQLSTATE class 22 ("data exception") means a value sent to PostgreSQL was unacceptable.
    # Validation at the edge should have caught it; if a case slipped through, the client
    # still gets a 4xx naming the problem rather than a 500.
    log.warning("unstorable_value", error=type(exc).__name__)
    return problem_response(ValidationFailed("a value in the request cannot be stored"))


async def _on_database_unavailable(_: Request, exc: Exception) -> Response:
    log.warning("database_unavailable", error=type(exc).__name__)
    return problem_response(ServiceUnavailable("the database is unavailable; retry shortly"))


def internal_error_response() -> Response:
    """The 500 for a bug: a generic message; the details go to the log, never to the client."""
    return problem_response(ProblemError("an unexpected error occurred; it has been logged"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(ValidationError, _on_pydantic_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(asyncpg.exceptions.DataError, _on_unstorable_value)
    for exc_class in _UNAVAILABLE:
        app.add_exception_handler(exc_class, _on_database_unavailable)
