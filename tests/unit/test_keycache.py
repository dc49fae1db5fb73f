"""The key cache keeps verified keys for its TTL, never past a revocation notice, and only while
its process listens for those notices."""

from __future__ import annotations

import time
import uuid

from cards_api.auth import Scope
from cards_api.keycache import KeyCache, VerifiedKey

READ = VerifiedKey(tenant_id=uuid.uuid4(), scopes=frozenset({Scope.CARDS_READ}))


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
