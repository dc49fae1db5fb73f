"""A short-lived cache of verified API keys, emptied at once when any key is revoked.

Looking a key up costs a query on every request; keys change rarely. Each API process keeps the
keys it has verified for `CARDS_KEY_CACHE_TTL` seconds (default 60). Any change that invalidates
a key (revoking, deleting, changing its scopes) sends a PostgreSQL notification from a trigger
(revision 0006), however it was made, and every process listening empties its cache when it
arrives, so a revoked key stops working everywhere within moments. While a process's listening
connection is down it caches nothing, so the bound holds without notices too (see
`listen_for_revocations`); the TTL is only a last resort. Unknown keys
are never cached: a new key works at once, and garbage cannot fill the memory.

Each entry lives a random half to all of the TTL: keys first seen together (every tenant of a
busy minute, a process's first seconds) would otherwise expire together a TTL later, and their
look-ups arrive as one burst (570 a second in one benchmark second, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

import asyncpg
import structlog

from cards_api.auth import Scope
from cards_api.db.queries.keys import REVOCATION_CHANNEL

MAX_ENTRIES: Final = 50_000
TTL_SPREAD: Final = 0.5
"""An entry lives between (1 - TTL_SPREAD) x TTL and the TTL, at random."""

log = structlog.get_logger("cards_api.keycache")


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    tenant_id: UUID
    scopes: frozenset[Scope]


@dataclass(frozen=True, slots=True)
class _Entry:
    key: VerifiedKey
    expires: float


class KeyCache:
    def __init__(self, ttl_seconds: float, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[bytes, _Entry] = {}
        self.generation = 0
        """Bumped by every `clear`: a look-up that began before a clear must not be cached."""
        self._listening = asyncio.Event()

    @property
    def listening(self) -> bool:
        """True while the revocation listener is connected; nothing is cached otherwise."""
        return self._listening.is_set()

    @listening.setter
    def listening(self, value: bool) -> None:
        if value:
            self._listening.set()
        else:
            self._listening.clear()

    async def wait_listening(self) -> None:
        await self._listening.wait()

    def get(self, key_hash: bytes) -> VerifiedKey | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry.expires <= time.monotonic():
            del self._entries[key_hash]
            return None
        return entry.key

    def put(self, key_hash: bytes, key: VerifiedKey, *, generation: int) -> None:
        """Cache a key verified by a look-up that began at `generation`.

        A revocation notice that arrived during the look-up cleared the cache (and bumped the
        generation); the look-up may have read the key before the revocation committed, so its
        answer is used for this one request but not kept.
        """
        if self.ttl <= 0 or not self.listening or generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))  # the oldest entry
        lifetime = self.ttl * random.uniform(1 - TTL_SPREAD, 1.0)  # noqa: S311
        self._entries[key_hash] = _Entry(key, time.monotonic() + lifetime)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


async def listen_for_revocations(
    connect: Callable[[], Awaitable[asyncpg.Connection]],
    cache: KeyCache,
    *,
    retry_seconds: float = 1.0,
    check_every: float = 2.0,
) -> None:
    """Empty `cache` on every revocation notice, for ever; reconnect when the connection drops.

    A connection can die without telling (a network partition, a pooler in between): every
    `check_every` seconds a `SELECT 1` proves it alive, or it is dropped and replaced. While no
    connection listens, the cache keeps nothing new, so every request looks its key up
    and a revocation takes effect at once; caching resumes once listening again.
    """
    while True:
        lost = asyncio.Event()
        try:
            conn = await connect()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("key_revocation_listener_unavailable", error=type(exc).__name__)
            await asyncio.sleep(retry_seconds)
            continue
        try:
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await conn.add_listener(REVOCATION_CHANNEL, lambda *_args: cache.clear())
            cache.clear()  # anything revoked while we were not listening
            cache.listening = True
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), check_every)
                if not lost.is_set():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), check_every)
            log.warning("key_revocation_listener_lost")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("key_revocation_listener_failed", error=type(exc).__name__)
        finally:
            cache.listening = False
            cache.clear()
            if not conn.is_closed():
                conn.terminate()
        await asyncio.sleep(retry_seconds)
