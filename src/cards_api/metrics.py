"""Every Prometheus metric of Cards API, defined once, recorded only through the functions here
(`observe_request`, `record_usage`, …), and how `/metrics` is rendered.

| Metric | Type | Labels |
|---|---|---|
| `cards_api_requests_total` | counter | `method`, `route` (the template), `status` |
| `cards_api_request_duration_seconds` | histogram | `method`, `route` |
| `card_usage_events_total` | counter | `card_type`, `workflow_type`: events, not calls |
| `cards_usage_write_duration_seconds` | histogram | none: the usage transaction |
| `cards_idempotency_replays_total` | counter | none |
| `cards_api_database_ready` | gauge | none: 1 when the scrape reached a migrated database |
| `cards_api_client_disconnects_total` | counter | none: clients gone before their body came |
| `cards_api_revocation_listener_up` | gauge | none: the answering process listens for revocations |
| `cards_embedding_duration_seconds` | histogram | `embedder` (the configured one: bounded) |
| `cards_embeddings_pending` | gauge | none: cards waiting for an embedding, as last counted |
| `cards_context_tokens` | histogram | none: tokens of each assembled context |
| `cards_api_event_loop_lag_seconds` | histogram | none: each second's worst event-loop lag |
| `cards_api_gc_pause_seconds` | histogram | none: each second's longest GC pause |

The seed named the usage histogram `cards_usage_write_duration_ms`; Prometheus wants base units
(and `promtool check metrics` rejects `_ms`), so it is exposed in seconds.

Labels stay bounded: `route` is the route template (`/api/v1/cards/{card_id}`) or `unmatched`,
`method` one of the HTTP methods or `other`, `card_type` a closed set, and `workflow_type`, which
clients choose, is kept for the first `MAX_WORKFLOW_TYPES` values a process sees, at most
`MAX_WORKFLOW_TYPES_PER_TENANT` of them introduced by any one tenant, and reported as `other`
beyond that. No label ever carries a tenant, card or workflow id. Since label values are
tenants' own words, `/metrics` is served only to whom the operator allows (see
`api/health.py`).

With several worker processes (`cards-api serve --workers N`) the metrics use
prometheus_client's multiprocess mode: `serve` creates a fresh `PROMETHEUS_MULTIPROC_DIR` before
the workers start and removes it at exit, and whichever worker answers a scrape reports the sums
over all of them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from typing import Final
from uuid import UUID

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# Requests take about a millisecond (a cached read) to a second (a large batch under load).
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

REQUESTS = Counter(
    "cards_api_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
REQUEST_DURATION = Histogram(
    "cards_api_request_duration_seconds",
    "Time from the first byte of a request to the end of its response.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
USAGE_EVENTS = Counter(
    "card_usage_events_total",
    "Usage events recorded (a workflow run's first use of a card; repeated calls are not events).",
    ["card_type", "workflow_type"],
)
USAGE_WRITE_DURATION = Histogram(
    "cards_usage_write_duration_seconds",
    "Time of the usage-tracking transaction, from BEGIN to COMMIT.",
    buckets=LATENCY_BUCKETS,
)
IDEMPOTENCY_REPLAYS = Counter(
    "cards_idempotency_replays_total",
    "Batch requests answered by replaying the stored response of their Idempotency-Key.",
)

EMBEDDING_DURATION = Histogram(
    "cards_embedding_duration_seconds",
    "Time to embed one batch of texts, by embedder.",
    ["embedder"],
    buckets=LATENCY_BUCKETS,
)
EMBEDDINGS_PENDING = Gauge(
    "cards_embeddings_pending",
    "Live cards whose current version has no embedding under the configured embedder "
    "(found by text until the background worker embeds them), as last counted.",
    multiprocess_mode="max",
)
CONTEXT_TOKENS = Histogram(
    "cards_context_tokens",
    "Tokens in each assembled context (POST /api/v1/context).",
    buckets=(50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000),
)
SEARCHES_RANKED = Counter(
    "cards_search_ranked_total",
    "Searches (retrieve with a query, contexts) by where they were ranked: `index`, the "
    "process's current copy of the tenant's cards, or `sql`, PostgreSQL (no current copy yet).",
    ["by"],
)
_RANKED_BY = {by: SEARCHES_RANKED.labels(by) for by in ("index", "sql")}
SEARCH_INDEX_CARDS = Gauge(
    "cards_search_index_cards",
    "Cards held in the processes' in-memory search indexes (CARDS_SEARCH_INDEX_CARDS each).",
    multiprocess_mode="livesum",
)
CLIENT_DISCONNECTS = Counter(
    "cards_api_client_disconnects_total",
    "Requests abandoned by their client before the request body was complete (not answered).",
)

# A second's worst stall: from nothing worth noticing to a process frozen for seconds.
STALL_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
EVENT_LOOP_LAG = Histogram(
    "cards_api_event_loop_lag_seconds",
    "Each second's worst event-loop lag per process: how late a 10 ms timer fired "
    "(time requests waited for the process, not for their own work).",
    buckets=STALL_BUCKETS,
)
GC_PAUSE = Histogram(
    "cards_api_gc_pause_seconds",
    "Each second's longest pause of Python's garbage collector per process (0: none).",
    buckets=STALL_BUCKETS,
)

UNMATCHED_ROUTE: Final = "unmatched"
OTHER: Final = "other"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_WORKFLOW_TYPES: Final = 100
MAX_WORKFLOW_TYPES_PER_TENANT: Final = 10
_workflow_types: set[str] = set()
_introduced_by: dict[UUID, int] = {}


def method_label(method: str) -> str:
    return method if method in _METHODS else OTHER


def workflow_type_label(workflow_type: str, tenant_id: UUID) -> str:
    """The label for a workflow type: the value itself while the budget lasts, else `other`.

    The budget is `MAX_WORKFLOW_TYPES` values per process, of which one tenant may introduce at
    most `MAX_WORKFLOW_TYPES_PER_TENANT`, so no tenant can spend it all and push every other
    tenant's traffic into `other`. A value already admitted is used by every tenant.
    """
    if workflow_type in _workflow_types:
        return workflow_type
    introduced = _introduced_by.get(tenant_id, 0)
    if len(_workflow_types) < MAX_WORKFLOW_TYPES and introduced < MAX_WORKFLOW_TYPES_PER_TENANT:
        _workflow_types.add(workflow_type)
        _introduced_by[tenant_id] = introduced + 1
        return workflow_type
    return OTHER


MAX_REQUEST_SERIES: Final = 1_000
_request_series: dict[tuple[str, str | None, int], tuple[Counter, Histogram]] = {}
"""Each (method, route, status)'s two series, looked up once: `labels()` takes a lock and builds
its key on every call, and this runs for every request. Bounded as the labels are."""


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    key = (method, route, status)
    series = _request_series.get(key)
    if series is None:
        method_value, route_value = method_label(method), route or UNMATCHED_ROUTE
        series = (
            REQUESTS.labels(method_value, route_value, str(status)),
            REQUEST_DURATION.labels(method_value, route_value),
        )
        if len(_request_series) < MAX_REQUEST_SERIES:
            _request_series[key] = series
    requests, duration = series
    requests.inc()
    duration.observe(seconds)


def record_usage(
    *, card_type: str, workflow_type: str, tenant_id: UUID, recorded: bool, seconds: float
) -> None:
    """A committed usage call: its transaction's time, and the event if it recorded one."""
    USAGE_WRITE_DURATION.observe(seconds)
    if recorded:
        record_usage_event(card_type=card_type, workflow_type=workflow_type, tenant_id=tenant_id)


def record_usage_event(*, card_type: str, workflow_type: str, tenant_id: UUID) -> None:
    """One usage event committed (by a usage call or a context naming its workflow)."""
    USAGE_EVENTS.labels(card_type, workflow_type_label(workflow_type, tenant_id)).inc()


@contextlib.contextmanager
def time_embedding(embedder: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        EMBEDDING_DURATION.labels(embedder).observe(time.perf_counter() - started)


def set_pending_embeddings(count: int) -> None:
    EMBEDDINGS_PENDING.set(count)


def record_context(tokens: int) -> None:
    CONTEXT_TOKENS.observe(tokens)


def record_search_ranked(*, in_process: bool) -> None:
    _RANKED_BY["index" if in_process else "sql"].inc()


def set_search_index_cards(count: int) -> None:
    SEARCH_INDEX_CARDS.set(count)


def observe_stalls(*, loop_lag_s: float, gc_pause_s: float) -> None:
    EVENT_LOOP_LAG.observe(loop_lag_s)
    GC_PAUSE.observe(gc_pause_s)


def record_idempotent_replay() -> None:
    IDEMPOTENCY_REPLAYS.inc()


def record_client_disconnect() -> None:
    CLIENT_DISCONNECTS.inc()


class _ScrapeGauge(Collector):
    """A gauge computed when scraped (not stored), so that it is right in multiprocess mode:
    it reports the state of the process answering the scrape."""

    def __init__(self, name: str, documentation: str, value: bool) -> None:
        self.name, self.documentation, self.value = name, documentation, value

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation, value=1.0 if self.value else 0.0)


def render(*, database_ready: bool, listener_up: bool) -> tuple[bytes, str]:
    """The exposition text: the sums over every worker in multiprocess mode."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_RegistryView())
    registry.register(
        _ScrapeGauge(
            "cards_api_database_ready",
            "1 when the database answered this scrape and its schema is at this build's head.",
            database_ready,
        )
    )
    registry.register(
        _ScrapeGauge(
            "cards_api_revocation_listener_up",
            "1 when the answering process listens for key revocations (else it caches no keys).",
            listener_up,
        )
    )
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _RegistryView(Collector):
    """The process's own default registry, for single-process use (tests, embedding)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()
