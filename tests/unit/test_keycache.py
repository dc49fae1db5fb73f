"""The key cache keeps verified keys for its TTL (an expired one answers for one TTL more while it
is looked up again), never past a revocation notice, and only while its process listens for
those notices."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable

from cards_api.auth import ParsedKey, Scope
from cards_api.keycache import STALE_GRACE, KeyCache, VerifiedKey

READ = VerifiedKey(tenant_id=uuid.uuid4(), scopes=frozenset({Scope.CARDS_READ}))
WRITE = VerifiedKey(tenant_id=READ.tenant_id, scopes=frozenset({Scope.CARDS_WRITE}))


def _listening(ttl: float, **kwargs: int) -> KeyCache:
    cache = KeyCache(ttl_seconds=ttl, **kwargs)
    cache.listening = True
    return cache


def test_entries_expire_after_the_ttl() -> None:
    cache = _listening(0.05)
    cache.put(b"k", READ, generation=cache.generation)
    assert cache.get(b"k") == READ
    time.sleep(0.06)
    assert cache.get(b"k") is None


def _parsed(key_hash: bytes) -> ParsedKey:
    return ParsedKey(tenant_id=READ.tenant_id, key_hash=key_hash)


def test_an_expired_entry_answers_within_its_grace_and_queues_one_look_up() -> None:
    cache = _listening(0.05)
    cache.put(b"k", READ, generation=cache.generation)
    assert cache.stale(_parsed(b"k")) == READ  # not expired yet: still the entry's answer
    time.sleep(0.06)
    assert cache.stale(_parsed(b"k")) == READ
    assert cache.stale(_parsed(b"k")) == READ
    assert cache._due.qsize() == 1  # one look-up however many requests met the entry
    assert cache.stale(_parsed(b"other")) is None  # never seen: nothing to answer with


def test_an_expired_entry_past_its_grace_is_gone() -> None:
    cache = _listening(0.05)
    cache.put(b"k", READ, generation=cache.generation)
    time.sleep(0.05 * (1 + STALE_GRACE) + 0.01)
    assert cache.stale(_parsed(b"k")) is None
    assert len(cache) == 0


def test_expired_entries_answer_nothing_without_a_listener_or_after_a_notice() -> None:
    cache = _listening(0.05)
    cache.put(b"a", READ, generation=cache.generation)
    cache.put(b"b", READ, generation=cache.generation)
    time.sleep(0.06)
    cache.listening = False
    assert cache.stale(_parsed(b"a")) is None
    cache.listening = True
    cache.clear()  # a revocation notice
    assert cache.stale(_parsed(b"b")) is None


async def _refresh(
    cache: KeyCache, look_up: Callable[[ParsedKey], Awaitable[VerifiedKey | None]]
) -> None:
    """Run the refresher until it has drained what `stale` queued."""
    task = asyncio.create_task(cache.refresh_forever(look_up))
    await asyncio.wait_for(cache._due.join(), timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_the_look_up_redone_in_the_background_renews_the_entry() -> None:
    cache = _listening(0.05)
    cache.put(b"k", READ, generation=cache.generation)
    await asyncio.sleep(0.06)
    assert cache.stale(_parsed(b"k")) == READ

    async def found(parsed: ParsedKey) -> VerifiedKey:
        cache.put(parsed.key_hash, WRITE, generation=cache.generation)
        return WRITE

    await _refresh(cache, found)
    assert cache.get(b"k") == WRITE  # fresh again, with what the look-up found


async def test_a_key_the_look_up_no_longer_finds_or_cannot_reach_is_dropped() -> None:
    cache = _listening(0.05)
    cache.put(b"gone", READ, generation=cache.generation)
    cache.put(b"down", READ, generation=cache.generation)
    await asyncio.sleep(0.06)
    assert cache.stale(_parsed(b"gone")) == READ
    assert cache.stale(_parsed(b"down")) == READ

    async def look_up(parsed: ParsedKey) -> VerifiedKey | None:
        if parsed.key_hash == b"down":
            raise OSError("database unreachable")
        return None

    await _refresh(cache, look_up)
    assert cache.stale(_parsed(b"gone")) is None
    assert cache.stale(_parsed(b"down")) is None
    assert len(cache) == 0


def test_keys_cached_together_do_not_expire_together() -> None:
    """Keys first seen in the same moment expire spread over the last half of the TTL, so
    their look-ups do not come back as one burst."""
    cache = _listening(60)
    now = time.monotonic()
    for n in range(200):
        cache.put(n.to_bytes(2, "big"), READ, generation=cache.generation)
    lifetimes = [entry.expires - now for entry in cache._entries.values()]
    assert all(30 - 0.5 <= lifetime <= 60 + 0.5 for lifetime in lifetimes)
    assert max(lifetimes) - min(lifetimes) > 15  # 200 draws over 30 s: never this close


def test_a_zero_ttl_caches_nothing() -> None:
    cache = _listening(0)
    cache.put(b"k", READ, generation=cache.generation)
    assert cache.get(b"k") is None


def test_the_oldest_entry_makes_room() -> None:
    cache = _listening(60, max_entries=2)
    for key in (b"a", b"b", b"c"):
        cache.put(key, READ, generation=cache.generation)
    assert cache.get(b"a") is None
    assert cache.get(b"c") == READ
    assert len(cache) == 2


def test_clear_forgets_everything() -> None:
    cache = _listening(60)
    cache.put(b"a", READ, generation=cache.generation)
    cache.clear()
    assert cache.get(b"a") is None


def test_a_look_up_that_began_before_a_revocation_notice_is_not_cached() -> None:
    # The race: a request reads the key (still active), the revocation commits and its notice
    # clears the cache, then the request stores what it read. It must not stick.
    cache = _listening(60)
    began = cache.generation
    cache.clear()  # the notice arrives while the look-up is in flight
    cache.put(b"k", READ, generation=began)
    assert cache.get(b"k") is None


def test_nothing_is_cached_while_no_listener_is_connected() -> None:
    cache = KeyCache(ttl_seconds=60)
    assert not cache.listening
    cache.put(b"k", READ, generation=cache.generation)
    assert cache.get(b"k") is None
