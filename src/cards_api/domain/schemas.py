"""Request models: the contract's shapes and limits, checked once at the edge (responses are
described in `responses.py`).

Request models forbid unknown fields (a client cannot set what the server owns, such as
`tenant_id`, `usage_count` or `id`). Every text field refuses NUL characters and unpaired
surrogates, which PostgreSQL cannot store: bad input gets a 422, never a 500.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from cards_api import limits


class CardType(StrEnum):
    COMPANY = "company"
    AUDIENCE = "audience"
    VOICE = "voice"
    INSIGHT = "insight"
    PRODUCT = "product"
    COMPETITOR = "competitor"
    TOPIC = "topic"
    EXAMPLE = "example"


class SearchMode(StrEnum):
    """How a `query` ranks cards: by its words, by meaning, or both fused (the default)."""

    TEXT = "text"
    SEMANTIC = "semantic"
    HYBRID = "hybrid"


class GroupBy(StrEnum):
    CARD_TYPE = "card_type"
    WORKFLOW_TYPE = "workflow_type"
    CARD = "card"


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _finite(value: object) -> bool:
    """True when no float anywhere in `value` is infinite or NaN (JSON has no such numbers)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _content(value: dict[str, Any]) -> dict[str, Any]:
    if not _finite(value):
        raise ValueError("numbers must be finite")
    try:
        encoded = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        raise ValueError(
            "must be a JSON object of valid text and numbers within 64-bit range"
        ) from None
    if len(encoded) > limits.MAX_CONTENT_BYTES:
        raise ValueError(f"must be at most {limits.MAX_CONTENT_BYTES} bytes as JSON")
    if b"\\u0000" in encoded:
        raise ValueError("must not contain NUL characters")
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Title = Annotated[
    str,
    StringConstraints(min_length=limits.MIN_TITLE_CHARS, max_length=limits.MAX_TITLE_CHARS),
    AfterValidator(_storable),
    AfterValidator(_not_blank),
]
Tag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_TAG_CHARS),
    AfterValidator(_storable),
    AfterValidator(_not_blank),
]
Tags = Annotated[list[Tag], Field(max_length=limits.MAX_TAGS), AfterValidator(_unique)]
Content = Annotated[dict[str, Any], AfterValidator(_content)]
ExternalRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_EXTERNAL_REF_CHARS),
    AfterValidator(_storable),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CardCreate(_Request):
    card_type: CardType
    title: Title
    content: Content
    tags: Tags = Field(default_factory=list)
    external_ref: ExternalRef | None = None


class BatchCreateRequest(_Request):
    cards: Annotated[list[CardCreate], Field(min_length=1, max_length=limits.MAX_BATCH_CARDS)]


def _leave_out_not_null(schema: dict[str, Any]) -> None:
    """In the JSON schema, optional fields are left out rather than null (null is refused)."""
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options is not None:
            prop.update(next(o for o in options if o.get("type") != "null"))
        if prop.get("default", ...) is None:
            del prop["default"]
    schema["minProperties"] = 1


class CardPatch(_Request):
    """Fields to change; a field left out keeps its value, and at least one must be given."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_leave_out_not_null)

    title: Title | None = None
    content: Content | None = None
    tags: Tags | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> CardPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one of title, content, tags")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class RetrieveRequest(_Request):
    card_ids: (
        Annotated[list[UUID], Field(min_length=1, max_length=limits.MAX_RETRIEVE_IDS)] | None
    ) = None
    card_types: Annotated[list[CardType], Field(min_length=1, max_length=len(CardType))] | None = (
        None
    )
    tags: Annotated[list[Tag], Field(min_length=1, max_length=limits.MAX_TAGS)] | None = None
    query: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=limits.MAX_QUERY_CHARS),
            AfterValidator(_storable),
            AfterValidator(_not_blank),
        ]
        | None
    ) = None
    mode: SearchMode = SearchMode.HYBRID
    limit: Annotated[int, Field(ge=1, le=limits.MAX_PAGE_LIMIT, strict=True)] = (
        limits.DEFAULT_PAGE_LIMIT
    )

    @model_validator(mode="after")
    def _some_filter(self) -> RetrieveRequest:
        if (
            self.card_ids is None
            and self.card_types is None
            and self.tags is None
            and (self.query is None)
        ):
            raise ValueError("give at least one of card_ids, card_types, tags, query")
        return self


WorkflowId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_WORKFLOW_ID_CHARS),
    AfterValidator(_storable),
]
WorkflowType = Annotated[str, StringConstraints(pattern=limits.WORKFLOW_TYPE_PATTERN)]
SessionId = Annotated[
    str, StringConstraints(max_length=limits.MAX_SESSION_ID_CHARS), AfterValidator(_storable)
]


class UsageRequest(_Request):
    workflow_id: WorkflowId
    workflow_type: WorkflowType
    session_id: SessionId | None = None


class ContextFormat(StrEnum):
    MARKDOWN = "markdown"
    JSON = "json"


class ContextRequest(_Request):
    """What a workflow asks for: its task, its budget, and optionally which cards may go in."""

    task: Annotated[
        str,
        StringConstraints(min_length=1, max_length=limits.MAX_TASK_CHARS),
        AfterValidator(_storable),
        AfterValidator(_not_blank),
    ]
    token_budget: Annotated[int, Field(ge=limits.MIN_TOKEN_BUDGET, le=limits.MAX_TOKEN_BUDGET)]
    card_types: Annotated[list[CardType], Field(min_length=1, max_length=len(CardType))] | None = (
        None
    )
    tags: Annotated[list[Tag], Field(min_length=1, max_length=limits.MAX_TAGS)] | None = None
    include: Annotated[list[UUID], Field(max_length=limits.MAX_CONTEXT_INCLUDE)] | None = None
    per_type_limit: dict[CardType, Annotated[int, Field(ge=0, strict=True)]] | None = None
    format: ContextFormat = ContextFormat.MARKDOWN
    workflow_id: WorkflowId | None = None
    workflow_type: WorkflowType | None = None
    session_id: SessionId | None = None

    @model_validator(mode="after")
    def _workflow_complete(self) -> ContextRequest:
        if (self.workflow_id is None) != (self.workflow_type is None):
            raise ValueError("workflow_id and workflow_type go together, to record usage")
        if self.session_id is not None and self.workflow_id is None:
            raise ValueError("session_id needs workflow_id")
        return self


# Response shapes. Handlers render JSON directly (see `domain.render`); these models document
# the responses in the OpenAPI document and are checked against real responses in the tests.
