"""Response models: the shapes the routes answer with, for the OpenAPI document.

Routes render rows straight to JSON (`render.py`) rather than through these models; the
contract tests check every response against them, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field

from cards_api.domain.schemas import CardType, ContextFormat, GroupBy


class Card(BaseModel):
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


class BatchCreateResponse(BaseModel):
    cards: list[Card]
    created: int
    updated: int


class RetrievedCard(Card):
    score: float | None = Field(
        None, description="With `query`: relevance, higher is better, comparable within a response"
    )


class RetrieveResponse(BaseModel):
    cards: list[RetrievedCard]
    missing_ids: list[UUID]


class CardPage(BaseModel):
    cards: list[Card]
    next_cursor: str | None


class CardVersion(BaseModel):
    version: int
    title: str
    content: dict[str, Any]
    tags: list[str]
    created_at: datetime


class CardVersions(BaseModel):
    versions: list[CardVersion]
    next_cursor: str | None


class UsageResponse(BaseModel):
    card_id: UUID
    usage_count: int
    last_used_at: datetime
    event_recorded: bool


class UsageEvent(BaseModel):
    workflow_id: str
    workflow_type: str
    session_id: str | None
    created_at: datetime


class UsageEvents(BaseModel):
    events: list[UsageEvent]
    next_cursor: str | None


class SummaryGroup(BaseModel):
    key: str
    events: int


class UsageSummary(BaseModel):
    group_by: GroupBy
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    groups: list[SummaryGroup]
    truncated: bool = False
    """True when more groups exist than `limit`: the largest ones are returned."""


class ProblemItem(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is rendered."""

    type: str
    title: str
    status: int
    detail: str
    trace_id: str
    errors: list[ProblemItem] | None = None


class ContextCard(BaseModel):
    id: UUID
    version: int
    card_type: CardType
    title: str
    score: float | None = Field(description="Relevance to the task; null for an included card")
    tokens: int = Field(description="The card's own tokens in the text")


class OmittedCard(BaseModel):
    id: UUID
    reason: Literal["budget", "per_type_limit", "not_found"]


class ContextResponse(BaseModel):
    context_id: UUID
    text: str
    tokens: int
    token_budget: int
    tokenizer: str
    format: ContextFormat
    cards: list[ContextCard]
    omitted: list[OmittedCard]


class ContextRecord(BaseModel):
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
    created_at: AwareDatetime


class SearchInfo(BaseModel):
    embedder: str
    dimension: int
    pending: int = Field(description="The tenant's live cards still waiting for an embedding")
    tokenizer: str
