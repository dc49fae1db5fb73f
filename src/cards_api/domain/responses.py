"""Response models: the shapes the routes answer with, for the OpenAPI document.

Routes render rows straight to JSON (`render.py`) rather than through these models; the
contract tests check every response against them, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel

from cards_api.domain.schemas import CardType, GroupBy


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


class RetrieveResponse(BaseModel):
    cards: list[Card]
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
