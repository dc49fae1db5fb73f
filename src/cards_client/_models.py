"""Typed models of what the API accepts and returns.

Response models ignore fields they do not know, so a newer server that adds a field does not
break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

CardType = Literal[
    "company", "audience", "voice", "insight", "product", "competitor", "topic", "example"
]
GroupBy = Literal["card_type", "workflow_type", "card"]
SearchMode = Literal["text", "semantic", "hybrid"]
ContextFormat = Literal["markdown", "json"]


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class NewCard(BaseModel):
    """A card to create, or to upsert when `external_ref` names an existing one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    card_type: CardType
    title: str
    content: dict[str, Any]
    tags: list[str] = Field(default_factory=list)
    external_ref: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Card(_Response):
    id: UUID
    tenant_id: UUID
    card_type: CardType
    title: str
    content: dict[str, Any]
    tags: list[str]
    external_ref: str | None
    version: int
    usage_count: int
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime


class BatchResult(_Response):
    cards: list[Card]
    created: int
    updated: int
    replayed: bool = False
    """True when the server answered with the stored response of this Idempotency-Key."""
    idempotency_key: str | None = None


class ScoredCard(Card):
    score: float | None = None
    """With a query: relevance, higher is better, comparable within one result."""


class RetrieveResult(_Response):
    cards: list[ScoredCard]
    missing_ids: list[UUID]


class ContextCard(_Response):
    id: UUID
    version: int
    card_type: CardType
    title: str
    score: float | None
    tokens: int


class OmittedCard(_Response):
    id: UUID
    reason: str
    """`budget`, `per_type_limit` or `not_found`."""


class Context(_Response):
    """Prompt-ready text for a task, and what went into it."""

    context_id: UUID
    text: str
    tokens: int
    token_budget: int
    tokenizer: str
    format: ContextFormat
    cards: list[ContextCard]
    omitted: list[OmittedCard]
    usage_recorded: int = 0
    """With a workflow: how many new usage events the context recorded."""


class ContextRecord(_Response):
    """What a past context held, for audit."""

    context_id: UUID
    task: str
    format: ContextFormat
    tokens: int
    token_budget: int
    tokenizer: str
    cards: list[ContextCard]
    omitted: list[OmittedCard]
    workflow_id: str | None
    workflow_type: str | None
    created_at: datetime


class SearchInfo(_Response):
    embedder: str
    dimension: int
    pending: int
    tokenizer: str


class CardVersion(_Response):
    version: int
    title: str
    content: dict[str, Any]
    tags: list[str]
    created_at: datetime


class UsageResult(_Response):
    card_id: UUID
    usage_count: int
    last_used_at: datetime
    event_recorded: bool


class UsageEvent(_Response):
    workflow_id: str
    workflow_type: str
    session_id: str | None
    created_at: datetime


class SummaryGroup(_Response):
    key: str
    events: int


class UsageSummary(_Response):
    group_by: GroupBy
    since: datetime | None = None
    until: datetime | None = None
    groups: list[SummaryGroup]
