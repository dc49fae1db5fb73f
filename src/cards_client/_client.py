"""`CardsClient`: the synchronous client."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar
from uuid import UUID

import httpx
import tenacity

from cards_client import _calls as calls
from cards_client._base import BaseClient, __version__
from cards_client._calls import PAGE_SIZE, Call, Page
from cards_client._exceptions import ServiceUnavailable, TransportError
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

T = TypeVar("T")


class CardsClient(BaseClient):
    """Cards API client. Use as a context manager, or call `close()`.

    >>> with CardsClient("http://127.0.0.1:8002", api_key=key, tenant_id=tenant) as cards:
    ...     result = cards.create_cards([{"card_type": "voice", "title": "Calm", "content": {}}])
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(base_url, **options)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            transport=transport,
            headers={"User-Agent": f"cards-client/{__version__}"},
        )

    def __enter__(self) -> CardsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        trace_id = self._new_trace_id()
        try:
            for attempt in tenacity.Retrying(**self._retry_options(call)):
                with attempt:
                    request = self._request(self._http, call, trace_id)
                    return call.parse(self._checked(self._http.send(request), trace_id))
        except httpx.TransportError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}", trace_id=trace_id) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _pages(self, page: Callable[[str | None], Call[Page[T]]]) -> Iterator[T]:
        """Every item of a list endpoint, fetching the next page as the last is used up."""
        cursor: str | None = None
        while True:
            fetched = self._send(page(cursor))
            yield from fetched.items
            if fetched.next_cursor is None:
                return
            cursor = fetched.next_cursor

    # -- cards ----------------------------------------------------------------------------

    def create_cards(
        self, cards: Iterable[NewCard | Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> BatchResult:
        """Create or upsert 1-100 cards at once. Always sent with an Idempotency-Key (one is
        made when none is given) and retried with the same key, so a retry never duplicates."""
        return self._send(calls.create_cards(cards, idempotency_key))

    def upsert(
        self, cards: Iterable[NewCard | Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> BatchResult:
        """Like `create_cards`, but every card must carry its `external_ref`, so that running
        the same onboarding again updates the cards instead of adding new ones."""
        checked = [c if isinstance(c, NewCard) else NewCard.model_validate(c) for c in cards]
        if any(c.external_ref is None for c in checked):
            raise ValueError("upsert needs an external_ref on every card")
        return self.create_cards(checked, idempotency_key=idempotency_key)

    def retrieve(
        self,
        *,
        card_ids: Sequence[str | UUID] | None = None,
        card_types: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        query: str | None = None,
        limit: int | None = None,
        mode: SearchMode | None = None,
    ) -> RetrieveResult:
        """Cards by ids, types, tags, or a free-text `query` ranked by `mode` (`text`,
        `semantic`, or `hybrid`, the server's default); each found by a query has a `score`."""
        return self._send(calls.retrieve(card_ids, card_types, tags, query, limit, mode))

    def context(
        self,
        task: str,
        token_budget: int,
        *,
        card_types: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        include: Sequence[str | UUID] | None = None,
        per_type_limit: Mapping[str, int] | None = None,
        format: ContextFormat | None = None,
        workflow_id: str | None = None,
        workflow_type: str | None = None,
        session_id: str | None = None,
    ) -> Context:
        """Prompt-ready text for `task` within `token_budget` tokens (exact count), and what
        went in; with `workflow_id` and `workflow_type`, usage is recorded for each card."""
        call = calls.context(
            task,
            token_budget,
            card_types=card_types,
            tags=tags,
            include=include,
            per_type_limit=per_type_limit,
            format=format,
            workflow_id=workflow_id,
            workflow_type=workflow_type,
            session_id=session_id,
        )
        return self._send(call)

    def get_context(self, context_id: str | UUID) -> ContextRecord:
        """What a past context held (cards with their versions), for audit."""
        return self._send(calls.get_context(context_id))

    def search_info(self) -> SearchInfo:
        """The embedder and tokenizer in use, and how many cards wait for an embedding."""
        return self._send(calls.search_info())

    def list_cards(
        self, *, card_type: str | None = None, tag: str | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[Card]:
        """Every live card, page after page, in creation order."""
        return self._pages(calls.list_page(card_type, tag, page_size))

    def get(self, card_id: str | UUID) -> Card:
        return self._send(calls.get(card_id))

    def update(
        self,
        card_id: str | UUID,
        *,
        title: str | None = None,
        content: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        if_version: int | None = None,
    ) -> Card:
        """Change fields; with `if_version`, only if the card is still at that version
        (otherwise `PreconditionFailed`)."""
        return self._send(calls.update(card_id, title, content, tags, if_version))

    def archive(self, card_id: str | UUID, *, if_version: int | None = None) -> None:
        self._send(calls.archive(card_id, if_version))

    def versions(self, card_id: str | UUID) -> Iterator[CardVersion]:
        """The card's history, newest first."""
        return self._pages(calls.versions_page(card_id))

    # -- usage ----------------------------------------------------------------------------

    def track_usage(
        self,
        card_id: str | UUID,
        *,
        workflow_id: str,
        workflow_type: str,
        session_id: str | None = None,
    ) -> UsageResult:
        return self._send(calls.track_usage(card_id, workflow_id, workflow_type, session_id))

    def usage_events(self, card_id: str | UUID) -> Iterator[UsageEvent]:
        """The card's usage events, newest first."""
        return self._pages(calls.events_page(card_id))

    def usage_summary(
        self,
        *,
        group_by: GroupBy = "card_type",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageSummary:
        return self._send(calls.usage_summary(group_by, since, until))

    # -- operations -----------------------------------------------------------------------

    def health(self) -> bool:
        """True when the server answers (raises `TransportError` when it does not)."""
        return self._send(calls.health())

    def ready(self) -> bool:
        """True when the server can serve traffic (database reachable and migrated)."""
        try:
            return self._send(calls.ready())
        except ServiceUnavailable:
            return False
