"""Request bodies: JSON only (415), readable (400), valid for the route's model (422).

The middleware has already read the whole body (under a deadline and the size limit), so
parsing here never waits on the client.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from cards_api.errors import UnsupportedMediaType, validation_problem

M = TypeVar("M", bound=BaseModel)


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
