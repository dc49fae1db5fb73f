"""One `Call` per endpoint: method, path, parameters, how to parse the answer, and whether
repeating it is safe. Pure data, no I/O: the sync and async clients send the same calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel

from cards_client._models import (
    BatchResult,
    Card,
    CardVersion,
    Context,
    ContextFormat,
    ContextRecord,
    GroupBy,
    NewCard,
    RetrieveResult,
    SearchInfo,
    SearchMode,
    UsageEvent,
    UsageResult,
    UsageSummary,
)

PAGE_SIZE = 100

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Safety(Enum):
    """When repeating a request cannot do harm, which decides what may be retried."""

    REPEATABLE = "repeatable"
    """Reads, batch creates (always keyed) and usage (deduplicated): retry any transient failure."""
    ONCE = "once"
    """Other writes: retry only when the request surely did not run (connect error, our 503)."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    safety: Safety
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tenant: bool = True
    """Whether the call needs the tenant headers (everything under /api/v1)."""
    retry: bool = True


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _as(model: type[M]) -> Callable[[httpx.Response], M]:
    """A call's parser: the response's JSON as `model`."""
    return lambda response: model.model_validate(response.json())


def _card_json(card: NewCard | Mapping[str, Any]) -> dict[str, Any]:
    model = card if isinstance(card, NewCard) else NewCard.model_validate(card)
    return model.to_json()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _page(path: str, key: str, model: type[M], cursor: str | None, **params: Any) -> Call[Page[M]]:
    """A page of a list endpoint: its `key` items as `model`, and the cursor to the next."""

    def parse(response: httpx.Response) -> Page[M]:
        data = response.json()
        return Page([model.model_validate(item) for item in data[key]], data["next_cursor"])

    return Call("GET", path, parse, Safety.REPEATABLE, params={**params, "cursor": cursor})


def create_cards(
    cards: Iterable[NewCard | Mapping[str, Any]], idempotency_key: str | None
) -> Call[BatchResult]:
    # Always keyed, so that a retry can never create a second set of cards.
    key = idempotency_key or f"cards-client-{uuid.uuid4()}"

    def parse(response: httpx.Response) -> BatchResult:
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        return BatchResult.model_validate(
            {**response.json(), "replayed": replayed, "idempotency_key": key}
        )

    return Call(
        "POST",
        "/api/v1/cards/batch",
        parse,
        Safety.REPEATABLE,
        json={"cards": [_card_json(card) for card in cards]},
        headers={"Idempotency-Key": key},
    )


def retrieve(
    card_ids: Sequence[str | UUID] | None,
    card_types: Sequence[str] | None,
    tags: Sequence[str] | None,
    query: str | None,
    limit: int | None,
    mode: SearchMode | None = None,
) -> Call[RetrieveResult]:
    body: dict[str, Any] = {}
    if mode is not None:
        body["mode"] = mode
    if card_ids is not None:
        body["card_ids"] = [str(i) for i in card_ids]
    if card_types is not None:
        body["card_types"] = list(card_types)
    if tags is not None:
        body["tags"] = list(tags)
    if query is not None:
        body["query"] = query
    if limit is not None:
        body["limit"] = limit
    return Call(
        "POST",
        "/api/v1/cards/retrieve",
        _as(RetrieveResult),
        Safety.REPEATABLE,
        json=body,
    )


def context(
    task: str,
    token_budget: int,
    *,
    card_types: Sequence[str] | None,
    tags: Sequence[str] | None,
    include: Sequence[str | UUID] | None,
    per_type_limit: Mapping[str, int] | None,
    format: ContextFormat | None,
    workflow_id: str | None,
    workflow_type: str | None,
    session_id: str | None,
) -> Call[Context]:
    body: dict[str, Any] = {"task": task, "token_budget": token_budget}
    optional: dict[str, Any] = {
        "card_types": list(card_types) if card_types is not None else None,
        "tags": list(tags) if tags is not None else None,
        "include": [str(i) for i in include] if include is not None else None,
        "per_type_limit": dict(per_type_limit) if per_type_limit is not None else None,
        "format": format,
        "workflow_id": workflow_id,
        "workflow_type": workflow_type,
        "session_id": session_id,
    }
    body.update({k: v for k, v in optional.items() if v is not None})

    def parse(response: httpx.Response) -> Context:
        recorded = int(response.headers.get("X-Usage-Recorded", "0"))
        return Context.model_validate({**response.json(), "usage_recorded": recorded})

    # With a workflow, a repeat would count a second use: retried only when it surely did not run.
    safety = Safety.ONCE if workflow_id is not None else Safety.REPEATABLE
    return Call("POST", "/api/v1/context", parse, safety, json=body)


def get_context(context_id: str | UUID) -> Call[ContextRecord]:
    return Call(
        "GET",
        f"/api/v1/contexts/{context_id}",
        _as(ContextRecord),
        Safety.REPEATABLE,
    )


def search_info() -> Call[SearchInfo]:
    return Call(
        "GET",
        "/api/v1/search/info",
        _as(SearchInfo),
        Safety.REPEATABLE,
    )


def list_page(
    card_type: str | None, tag: str | None, page_size: int
) -> Callable[[str | None], Call[Page[Card]]]:
    return lambda cursor: _page(
        "/api/v1/cards", "cards", Card, cursor, card_type=card_type, tag=tag, limit=page_size
    )


def get(card_id: str | UUID) -> Call[Card]:
    return Call(
        "GET",
        f"/api/v1/cards/{card_id}",
        _as(Card),
        Safety.REPEATABLE,
    )


def update(
    card_id: str | UUID,
    title: str | None,
    content: Mapping[str, Any] | None,
    tags: Sequence[str] | None,
    if_version: int | None,
) -> Call[Card]:
    body: dict[str, Any] = {}
    if title is not None:
        body["title"] = title
    if content is not None:
        body["content"] = dict(content)
    if tags is not None:
        body["tags"] = list(tags)
    headers = {"If-Match": f'"{if_version}"'} if if_version is not None else {}
    return Call(
        "PATCH",
        f"/api/v1/cards/{card_id}",
        _as(Card),
        Safety.ONCE,
        json=body,
        headers=headers,
    )


def archive(card_id: str | UUID, if_version: int | None) -> Call[None]:
    headers = {"If-Match": f'"{if_version}"'} if if_version is not None else {}
    return Call("DELETE", f"/api/v1/cards/{card_id}", lambda r: None, Safety.ONCE, headers=headers)


def versions_page(card_id: str | UUID) -> Callable[[str | None], Call[Page[CardVersion]]]:
    return lambda cursor: _page(
        f"/api/v1/cards/{card_id}/versions", "versions", CardVersion, cursor, limit=PAGE_SIZE
    )


def track_usage(
    card_id: str | UUID, workflow_id: str, workflow_type: str, session_id: str | None
) -> Call[UsageResult]:
    body: dict[str, Any] = {"workflow_id": workflow_id, "workflow_type": workflow_type}
    if session_id is not None:
        body["session_id"] = session_id
    # Repeating a usage call records no second event: (workflow_id, card) is deduplicated.
    return Call(
        "POST",
        f"/api/v1/cards/{card_id}/usage",
        _as(UsageResult),
        Safety.REPEATABLE,
        json=body,
    )


def events_page(card_id: str | UUID) -> Callable[[str | None], Call[Page[UsageEvent]]]:
    return lambda cursor: _page(
        f"/api/v1/cards/{card_id}/usage", "events", UsageEvent, cursor, limit=PAGE_SIZE
    )


def usage_summary(
    group_by: GroupBy, since: datetime | None, until: datetime | None
) -> Call[UsageSummary]:
    return Call(
        "GET",
        "/api/v1/usage/summary",
        _as(UsageSummary),
        Safety.REPEATABLE,
        params={"group_by": group_by, "since": _iso(since), "until": _iso(until)},
    )


def health() -> Call[bool]:
    return Call("GET", "/health", lambda r: True, Safety.REPEATABLE, tenant=False, retry=False)


def ready() -> Call[bool]:
    return Call("GET", "/ready", lambda r: True, Safety.REPEATABLE, tenant=False, retry=False)
