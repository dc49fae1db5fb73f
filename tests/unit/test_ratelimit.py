"""The token bucket's rule, on a clock the test controls: a burst, then the rate, per identity;
`check` refuses without spending, `spend` counts failures without refusing."""

from __future__ import annotations

import pytest

from cards_api.errors import RateLimited
from cards_api.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.take(b"k")
    with pytest.raises(RateLimited) as refused:
        limiter.take(b"k")
    assert refused.value.headers["Retry-After"] == "1"  # half a second, rounded up
    clock.now += 0.5  # one token back at 2 per second
    limiter.take(b"k")
    with pytest.raises(RateLimited):
        limiter.take(b"k")


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=2, clock=clock)
    clock.now += 3600
    limiter.take(b"k")
    limiter.take(b"k")
    with pytest.raises(RateLimited):
        limiter.take(b"k")


def test_identities_have_buckets_of_their_own() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    limiter.take(b"a")
    limiter.take(b"b")
    with pytest.raises(RateLimited):
        limiter.take(b"a")


def test_retry_after_says_how_long_until_a_token() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=0.25, burst=1, clock=clock)
    limiter.take(b"k")
    clock.now += 1
    with pytest.raises(RateLimited) as refused:
        limiter.take(b"k")
    assert refused.value.headers["Retry-After"] == "3"


def test_check_refuses_without_spending_and_spend_never_refuses() -> None:
    clock = Clock()
    failures = RateLimiter(rate=1, burst=2, clock=clock, who="this address")
    failures.check(b"addr")
    failures.spend(b"addr")
    failures.spend(b"addr")
    failures.spend(b"addr")  # more failures than tokens: still no exception
    with pytest.raises(RateLimited) as refused:
        failures.check(b"addr")
    assert "this address" in refused.value.detail
    clock.now += 1
    failures.check(b"addr")  # refilled: checking spends nothing
    failures.check(b"addr")


def test_a_zero_rate_turns_the_limit_off() -> None:
    limiter = RateLimiter(rate=0, burst=1, clock=Clock())
    for _ in range(100):
        limiter.take(b"k")


def test_old_buckets_make_room() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, max_buckets=2, clock=clock)
    limiter.take(b"a")
    limiter.take(b"b")
    limiter.take(b"c")  # drops a's bucket, the oldest
    limiter.take(b"a")  # a starts afresh with a full bucket
