"""Everything the sync and async clients share: configuration, request building, response
parsing, error mapping and the retry policy. The two clients only add I/O."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar
from uuid import UUID

import httpx
import tenacity
from tenacity.wait import wait_exponential_jitter

from cards_client._exceptions import APIError, error_for
from cards_client._models import (
    BatchResult,
    Card,
    CardVersion,
    GroupBy,
    NewCard,
    RetrieveResult,
    UsageEvent,
    UsageResult,
    UsageSummary,
)

__version__ = "1.0.0"

DEFAULT_URL = "http://127.0.0.1:8002"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 6
PAGE_SIZE = 100
RETRY_STATUSES = frozenset({502, 503, 504})

T = TypeVar("T")


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


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _card_json(card: NewCard | Mapping[str, Any]) -> dict[str, Any]:
    model = card if isinstance(card, NewCard) else NewCard.model_validate(card)
    return model.to_json()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


class BaseClient:
    """Configuration and all non-I/O logic of `CardsClient` and `AsyncCardsClient`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        tenant_id: str | UUID | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
    ) -> None:
        """Arguments win over the environment (`CARDS_URL`, `CARDS_API_KEY`, `CARDS_TENANT_ID`)."""
        self.base_url = (base_url or _env("CARDS_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key or _env("CARDS_API_KEY")
        tenant = tenant_id or _env("CARDS_TENANT_ID")
        self.tenant_id = UUID(str(tenant)) if tenant is not None else None
        self.timeout = timeout
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.max_retries = max_retries
        # backoff, 2 x backoff, 4 x backoff … up to max_backoff, each plus up to `backoff` of
        # random jitter so that many clients retrying at once do not arrive in step.
        self._wait_backoff = wait_exponential_jitter(
            multiplier=backoff, max=max_backoff, jitter=backoff
        )

    # -- retry policy ------------------------------------------------------------------------

    def _retryable(self, call: Call[Any]) -> Callable[[BaseException], bool]:
        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, httpx.TransportError):
                return call.safety is Safety.REPEATABLE or isinstance(exc, httpx.ConnectError)
            if isinstance(exc, APIError):
                if call.safety is Safety.ONCE:
                    return exc.status == 503
                in_progress = exc.status == 409 and exc.type.endswith("/request-in-progress")
                return exc.status in RETRY_STATUSES or in_progress
            return False

        return retryable

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff with jitter, but never sooner than the server's Retry-After."""
        delay = float(self._wait_backoff(state))
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, APIError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    def _retry_options(self, call: Call[Any]) -> dict[str, Any]:
        return {
            "stop": tenacity.stop_after_attempt(self.max_retries + 1 if call.retry else 1),
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(self._retryable(call)),
            "reraise": True,
        }

    # -- requests and responses ---------------------------------------------------------------

    def _request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any], trace_id: str
    ) -> httpx.Request:
        headers = {"X-Trace-ID": trace_id, "Accept": "application/json", **call.headers}
        if call.tenant:
            if self.tenant_id is None:
                raise ValueError("a tenant id is required: pass tenant_id= or set CARDS_TENANT_ID")
            headers["X-Tenant-ID"] = str(self.tenant_id)
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
        params = {k: v for k, v in (call.params or {}).items() if v is not None}
        return http.build_request(
            call.method, call.path, params=params, json=call.json, headers=headers
        )

    @staticmethod
    def _checked(response: httpx.Response, trace_id: str) -> httpx.Response:
        if response.status_code < 400:
            return response
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        error = error_for(
            response.status_code,
            problem,
            trace_id=response.headers.get("X-Trace-ID", trace_id),
        )
        error.retry_after = _retry_after(response)
        raise error

    @staticmethod
    def _new_trace_id() -> str:
        return uuid.uuid4().hex

    # -- the calls, one per endpoint ------------------------------------------------------------

    def _create_cards(
        self, cards: Iterable[NewCard | Mapping[str, Any]], idempotency_key: str | None
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

    def _retrieve(
        self,
        card_ids: Sequence[str | UUID] | None,
        card_types: Sequence[str] | None,
        tags: Sequence[str] | None,
        query: str | None,
        limit: int | None,
    ) -> Call[RetrieveResult]:
        body: dict[str, Any] = {}
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
            lambda r: RetrieveResult.model_validate(r.json()),
            Safety.REPEATABLE,
            json=body,
        )

    def _list_page(
        self, card_type: str | None, tag: str | None, cursor: str | None, page_size: int
    ) -> Call[Page[Card]]:
        return Call(
            "GET",
            "/api/v1/cards",
            lambda r: Page(
                [Card.model_validate(c) for c in r.json()["cards"]], r.json()["next_cursor"]
            ),
            Safety.REPEATABLE,
            params={"card_type": card_type, "tag": tag, "cursor": cursor, "limit": page_size},
        )

    def _get(self, card_id: str | UUID) -> Call[Card]:
        return Call(
            "GET",
            f"/api/v1/cards/{card_id}",
            lambda r: Card.model_validate(r.json()),
            Safety.REPEATABLE,
        )

    def _update(
        self,
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
            lambda r: Card.model_validate(r.json()),
            Safety.ONCE,
            json=body,
            headers=headers,
        )

    def _archive(self, card_id: str | UUID, if_version: int | None) -> Call[None]:
        headers = {"If-Match": f'"{if_version}"'} if if_version is not None else {}
        return Call(
            "DELETE", f"/api/v1/cards/{card_id}", lambda r: None, Safety.ONCE, headers=headers
        )

    def _versions_page(self, card_id: str | UUID, cursor: str | None) -> Call[Page[CardVersion]]:
        return Call(
            "GET",
            f"/api/v1/cards/{card_id}/versions",
            lambda r: Page(
                [CardVersion.model_validate(v) for v in r.json()["versions"]],
                r.json()["next_cursor"],
            ),
            Safety.REPEATABLE,
            params={"cursor": cursor, "limit": PAGE_SIZE},
        )

    def _track_usage(
        self, card_id: str | UUID, workflow_id: str, workflow_type: str, session_id: str | None
    ) -> Call[UsageResult]:
        body: dict[str, Any] = {"workflow_id": workflow_id, "workflow_type": workflow_type}
        if session_id is not None:
            body["session_id"] = session_id
        # Repeating a usage call records no second event: (workflow_id, card) is deduplicated.
        return Call(
            "POST",
            f"/api/v1/cards/{card_id}/usage",
            lambda r: UsageResult.model_validate(r.json()),
            Safety.REPEATABLE,
            json=body,
        )

    def _events_page(self, card_id: str | UUID, cursor: str | None) -> Call[Page[UsageEvent]]:
        return Call(
            "GET",
            f"/api/v1/cards/{card_id}/usage",
            lambda r: Page(
                [UsageEvent.model_validate(e) for e in r.json()["events"]],
                r.json()["next_cursor"],
            ),
            Safety.REPEATABLE,
            params={"cursor": cursor, "limit": PAGE_SIZE},
        )

    def _usage_summary(
        self, group_by: GroupBy, since: datetime | None, until: datetime | None
    ) -> Call[UsageSummary]:
        return Call(
            "GET",
            "/api/v1/usage/summary",
            lambda r: UsageSummary.model_validate(r.json()),
            Safety.REPEATABLE,
            params={"group_by": group_by, "since": _iso(since), "until": _iso(until)},
        )

    def _health(self) -> Call[bool]:
        return Call("GET", "/health", lambda r: True, Safety.REPEATABLE, tenant=False, retry=False)

    def _ready(self) -> Call[bool]:
        return Call("GET", "/ready", lambda r: True, Safety.REPEATABLE, tenant=False, retry=False)
