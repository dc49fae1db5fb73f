"""Errors as exception classes that carry their HTTP status, and the one problem+json renderer.

Code anywhere below the routes raises one of these; `install_error_handlers` turns it, and
everything FastAPI, Starlette or asyncpg may raise, into an RFC 9457 `application/problem+json`
response carrying the request's `trace_id`. Nothing else in the service renders an error, so
every error looks the same and none can leak a traceback.

    ProblemError
     ├── BadRequest                 400
     │    └── MalformedJSON         400
     ├── Unauthorized               401
     ├── Forbidden                  403
     ├── NotFound                   404
     ├── MethodNotAllowed           405
     ├── Conflict                   409
     │    └── RequestInProgress     409
     ├── RequestTimeout             408
     ├── PreconditionFailed         412
     ├── PayloadTooLarge            413
     ├── UnsupportedMediaType       415
     ├── ValidationFailed           422
     │    └── IdempotencyKeyReused  422
     └── ServiceUnavailable         503
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from cards_api.tracing import current_trace_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://cards-api.dev/problems/"

log = structlog.get_logger("cards_api.errors")

Loc = Sequence[str | int]


class ProblemError(Exception):
    """An error with a status code, a stable `type` slug and a human `detail`."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})


class BadRequest(ProblemError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class MalformedJSON(BadRequest):
    slug = "malformed-json"
    title = "Malformed JSON"


class Unauthorized(ProblemError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str = "a valid API key is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="cards-api"'})


class Forbidden(ProblemError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(ProblemError):
    status = 404
    slug = "not-found"
    title = "Not found"


class MethodNotAllowed(ProblemError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class Conflict(ProblemError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class RequestInProgress(Conflict):
    slug = "request-in-progress"
    title = "A request with this Idempotency-Key is in progress"


class RequestTimeout(ProblemError):
    status = 408
    slug = "request-timeout"
    title = "Request timeout"


class PreconditionFailed(ProblemError):
    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class PayloadTooLarge(ProblemError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(ProblemError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class ValidationFailed(ProblemError):
    status = 422
    slug = "validation-error"
    title = "Validation failed"

    @classmethod
    def at(cls, loc: Loc, msg: str) -> ValidationFailed:
        """One failing field: the detail repeats it so a human sees it without `errors`."""
        return cls(f"{_loc_text(loc)}: {msg}", errors=[{"loc": list(loc), "msg": msg}])


class IdempotencyKeyReused(ValidationFailed):
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused with a different request"


class ServiceUnavailable(ProblemError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def _loc_text(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


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


def validation_problem(errors: Sequence[Mapping[str, Any]], *, prefix: Loc = ()) -> ProblemError:
    """Turn pydantic error dicts into one 422 (or a 400 when the JSON itself is unreadable)."""
    if any(err.get("type") == "json_invalid" for err in errors):
        first = next(err for err in errors if err.get("type") == "json_invalid")
        return MalformedJSON(f"the request body is not valid JSON: {first.get('msg', '')}")
    items = [{"loc": [*prefix, *err.get("loc", ())], "msg": _message(err)} for err in errors]
    detail = "; ".join(f"{_loc_text(item['loc'])}: {item['msg']}" for item in items[:3])
    if len(items) > 3:
        detail += f"; and {len(items) - 3} more"
    return ValidationFailed(detail, errors=items)


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    # pydantic prefixes messages raised by our validators with "Value error, ".
    return msg.removeprefix("Value error, ")


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
