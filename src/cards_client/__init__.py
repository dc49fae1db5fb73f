"""Python client for Cards API.

    from cards_client import CardsClient

    with CardsClient() as cards:  # CARDS_URL, CARDS_API_KEY, CARDS_TENANT_ID
        batch = cards.create_cards([{"card_type": "voice", "title": "Calm", "content": {}}])
        cards.track_usage(batch.cards[0].id, workflow_id="run-1", workflow_type="newsletter")

Retries (connection errors, 502/503/504, a 409 for a batch still in flight) use exponential
backoff with jitter, only where repeating is safe: batch creates always carry an
Idempotency-Key that stays the same across retries, usage is deduplicated by the server, and
other writes are retried only when they surely did not run.
"""

from cards_client._async_client import AsyncCardsClient
from cards_client._base import __version__
from cards_client._client import CardsClient
from cards_client._exceptions import (
    APIError,
    AuthError,
    BadRequest,
    CardsError,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from cards_client._models import (
    BatchResult,
    Card,
    CardVersion,
    Context,
    ContextCard,
    ContextRecord,
    NewCard,
    OmittedCard,
    RetrieveResult,
    ScoredCard,
    SearchInfo,
    SummaryGroup,
    UsageEvent,
    UsageResult,
    UsageSummary,
)

__all__ = [
    "APIError",
    "AsyncCardsClient",
    "AuthError",
    "BadRequest",
    "BatchResult",
    "Card",
    "CardVersion",
    "CardsClient",
    "CardsError",
    "Conflict",
    "Context",
    "ContextCard",
    "ContextRecord",
    "Forbidden",
    "IdempotencyKeyReused",
    "NewCard",
    "NotFound",
    "OmittedCard",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RateLimited",
    "RetrieveResult",
    "ScoredCard",
    "SearchInfo",
    "ServerError",
    "ServiceUnavailable",
    "SummaryGroup",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UsageEvent",
    "UsageResult",
    "UsageSummary",
    "ValidationFailed",
    "__version__",
]
