from __future__ import annotations

import time
import uuid

from cards_api.auth import Scope
from cards_api.keycache import KeyCache, VerifiedKey

READ = VerifiedKey(tenant_id=uuid.uuid4(), scopes=frozenset({Scope.CARDS_READ}))


def test_entries_expire_after_the_ttl() -> None:
    cache = KeyCache(ttl_seconds=0.05)
    cache.put(b"k", READ)
    assert cache.get(b"k") == READ
    time.sleep(0.06)
    assert cache.get(b"k") is None
    assert len(cache) == 0


def test_a_zero_ttl_caches_nothing() -> None:
    cache = KeyCache(ttl_seconds=0)
    cache.put(b"k", READ)
    assert cache.get(b"k") is None


def test_the_oldest_entry_makes_room() -> None:
    cache = KeyCache(ttl_seconds=60, max_entries=2)
    for key in (b"a", b"b", b"c"):
        cache.put(key, READ)
    assert cache.get(b"a") is None
    assert cache.get(b"c") == READ
    assert len(cache) == 2


def test_clear_forgets_everything() -> None:
    cache = KeyCache(ttl_seconds=60)
    cache.put(b"a", READ)
    cache.clear()
    assert cache.get(b"a") is None
