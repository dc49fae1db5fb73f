"""The per-key rate limit: a token bucket per API key (per tenant in header mode).

Each key may make `CARDS_RATE_LIMIT` requests per second on average, in bursts of up to
`CARDS_RATE_LIMIT_BURST`; beyond that a request gets a 429 with `Retry-After` before it touches
the database. Buckets live in each API process, so with N worker processes a key can reach up
to N times the rate; a gateway in front is the place for a global limit. Memory is bounded:
buckets are dropped oldest-first past `max_buckets`.

The same bucket guards key look-ups: each client address may fail authentication
`CARDS_AUTH_FAILURE_RATE` times per second (bursts of `CARDS_AUTH_FAILURE_BURST`); past that it
gets a 429 before its next unknown key costs a database query.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cards_api.errors import RateLimited


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        max_buckets: int = 100_000,
        *,
        who: str = "this API key",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = max(1, burst)
        self.max_buckets = max_buckets
        self.who = who
        self._buckets: dict[bytes, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _bucket(self, identity: bytes) -> _Bucket:
        """`identity`'s bucket, refilled up to now and moved last (dict order is recency)."""
        now = self.clock()
        bucket = self._buckets.pop(identity, None)
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self._buckets.pop(next(iter(self._buckets)))
            bucket = _Bucket(tokens=float(self.burst), updated=now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        self._buckets[identity] = bucket
        return bucket

    def _refuse_if_empty(self, bucket: _Bucket) -> None:
        if bucket.tokens < 1:
            raise RateLimited((1 - bucket.tokens) / self.rate, who=self.who)

    def check(self, identity: bytes) -> None:
        """Raise RateLimited if `identity` has no token left, without spending one."""
        if self.rate > 0:
            self._refuse_if_empty(self._bucket(identity))

    def spend(self, identity: bytes) -> None:
        """Spend one token of `identity`'s bucket (it may go below one; `check` then refuses)."""
        if self.rate <= 0:
            return
        bucket = self._bucket(identity)
        bucket.tokens = max(0.0, bucket.tokens - 1)

    def take(self, identity: bytes) -> None:
        """Spend one token of `identity`'s bucket, or raise RateLimited (one look at the
        bucket: this runs on every request)."""
        if self.rate <= 0:
            return
        bucket = self._bucket(identity)
        self._refuse_if_empty(bucket)
        bucket.tokens -= 1
