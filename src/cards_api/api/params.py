"""Query and header parameters that several routes read, declared once."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Query

from cards_api import limits
from cards_api.errors import BadRequest

Limit = Annotated[
    int,
    Query(
        ge=1, le=limits.MAX_PAGE_LIMIT, description=f"page size, at most {limits.MAX_PAGE_LIMIT}"
    ),
]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page")
]

_VERSION = re.compile(r"[0-9]{1,10}")


def if_match(
    value: Annotated[
        str,
        # A plain optional string in the OpenAPI document (an empty value counts as absent):
        # the nullable form drove Schemathesis into a CPython 3.11 crash while it mutated it.
        Header(
            alias="If-Match",
            description='Only if the card is at this version: its ETag, e.g. "3" (or W/"3", a '
            "comma-separated list, or *); a stale version is a 412, anything else a 400",
        ),
    ] = "",
) -> list[int] | None:
    """Versions the client says it is changing (`"3"`, `W/"3"`, a list, or `*` for any)."""
    if value.strip() in ("", "*"):
        return None
    versions = []
    for tag in value.split(","):
        text = tag.strip().removeprefix("W/").strip('"')
        # ASCII digits only: str.isdigit() also accepts "²" and "١٢", which int() refuses.
        if not _VERSION.fullmatch(text) or not 0 < int(text) < 2**31:
            raise BadRequest('If-Match must hold ETags of this API, such as "3"')
        versions.append(int(text))
    return versions


IfMatch = Annotated[list[int] | None, Depends(if_match)]


def etag(version: int) -> str:
    return f'"{version}"'
