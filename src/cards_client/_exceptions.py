"""Errors raised by the Cards API client.

Every error carries the `trace_id` of the request that failed (the client sends one with every
request and keeps it across retries), so a failure can be found in the server's logs.

    CardsError
     ├── TransportError              no HTTP answer (after retries): refused, reset, timed out
     └── APIError                    an HTTP answer with a problem+json body
          ├── BadRequest             400
          ├── AuthError              401, 403
          │    ├── Unauthorized      401
          │    └── Forbidden         403
          ├── NotFound               404
          ├── Conflict               409
          ├── PreconditionFailed     412
          ├── PayloadTooLarge        413
          ├── UnsupportedMediaType   415
          ├── ValidationFailed       422 (with `errors`)
          │    └── IdempotencyKeyReused
          ├── RateLimited            429
          └── ServerError            5xx
               └── ServiceUnavailable 503
"""

from __future__ import annotations

from typing import Any


class CardsError(Exception):
    """Base of every error this client raises."""

    def __init__(self, message: str, *, trace_id: str) -> None:
        super().__init__(message)
        self.message = message
        self.trace_id = trace_id

    def __str__(self) -> str:
        return f"{self.message} (trace_id={self.trace_id})"


class TransportError(CardsError):
    """The server could not be reached, or did not answer, even after retrying."""


class APIError(CardsError):
    """The server answered with an error status and an RFC 9457 problem."""

    status: int

    def __init__(
        self,
        message: str,
        *,
        status: int,
        trace_id: str,
        type: str = "about:blank",
        title: str = "",
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, trace_id=trace_id)
        self.retry_after: float | None = None
        self.status = status
        self.type = type
        self.title = title
        self.problem = problem or {}


class BadRequest(APIError):
    pass


class AuthError(APIError):
    pass


class Unauthorized(AuthError):
    pass


class Forbidden(AuthError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class PreconditionFailed(APIError):
    pass


class PayloadTooLarge(APIError):
    pass


class UnsupportedMediaType(APIError):
    pass


class ValidationFailed(APIError):
    @property
    def errors(self) -> list[dict[str, Any]]:
        """`[{"loc": [...], "msg": "..."}]`: each failing field and why."""
        errors = self.problem.get("errors")
        return list(errors) if isinstance(errors, list) else []


class IdempotencyKeyReused(ValidationFailed):
    pass


class RateLimited(APIError):
    pass


class ServerError(APIError):
    pass


class ServiceUnavailable(ServerError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(status: int, problem: dict[str, Any], *, trace_id: str) -> APIError:
    """The exception for an error response, from its status and problem body."""
    problem_type = str(problem.get("type", "about:blank"))
    cls = _BY_STATUS.get(status)
    if cls is ValidationFailed and problem_type.endswith("/idempotency-key-reused"):
        cls = IdempotencyKeyReused
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    title = str(problem.get("title", ""))
    detail = str(problem.get("detail") or title or f"HTTP {status}")
    return cls(
        f"{status} {detail}",
        status=status,
        trace_id=str(problem.get("trace_id") or trace_id),
        type=problem_type,
        title=title,
        problem=problem,
    )
