"""Errors as exception classes that carry their HTTP status, and the one problem+json renderer.

Code anywhere below the routes raises one of these; `problems.install_error_handlers` turns
it, and everything FastAPI, Starlette or asyncpg may raise, into an RFC 9457
`application/problem+json` response carrying the request's `trace_id`.

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
     ├── RateLimited                429
     └── ServiceUnavailable         503

`problems.py` renders them; nothing else turns an error into a response.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

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


class RateLimited(ProblemError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, retry_after: float, *, who: str = "this API key") -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            f"too many requests for {who}; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


class ServiceUnavailable(ProblemError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def _loc_text(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


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
