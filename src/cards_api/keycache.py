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

An expired entry still answers, for at most one TTL more, while its look-up is redone in the
background (`stale`, `refresh_forever`): after a quiet spell longer than the keys' life every
tenant's next request would otherwise wait for a look-up of its own, all at once (bursts of
100-380 a second in the benchmark). This trusts an entry no more than a fresh one: entries exist
only while the listener has been up since they were verified, and every notice empties the
cache, expired entries included; the redone look-up drops a key it no longer finds.
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

from cards_api.auth import ParsedKey, Scope
from cards_api.db.queries.keys import REVOCATION_CHANNEL

MAX_ENTRIES: Final = 50_000
TTL_SPREAD: Final = 0.5
"""An entry lives between (1 - TTL_SPREAD) x TTL and the TTL, at random."""
STALE_GRACE: Final = 1.0
"""An expired entry answers for at most STALE_GRACE x TTL more, while its look-up is redone."""

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
        self._due: asyncio.Queue[ParsedKey] = asyncio.Queue()
        self._queued: set[bytes] = set()

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
        """The key if its entry is within its life (an expired one is `stale`'s to answer)."""
        entry = self._entries.get(key_hash)
        if entry is None or entry.expires <= time.monotonic():
            return None
        return entry.key

    def stale(self, parsed: ParsedKey) -> VerifiedKey | None:
        """An expired entry's key, within its grace and while the listener is up, its look-up
        queued to be redone in the background (once, however many requests ask meanwhile)."""
        entry = self._entries.get(parsed.key_hash)
        if entry is None or not self.listening:
            return None
        if time.monotonic() > entry.expires + self.ttl * STALE_GRACE:
            del self._entries[parsed.key_hash]
            return None
        if parsed.key_hash not in self._queued:
            self._queued.add(parsed.key_hash)
            self._due.put_nowait(parsed)
        return entry.key

    async def refresh_forever(
        self, look_up: Callable[[ParsedKey], Awaitable[VerifiedKey | None]]
    ) -> None:
        """Redo the look-ups `stale` queued, one at a time: a burst of expired keys becomes a
        trickle of background look-ups rather than one in front of each first request.
        `look_up` caches what it finds; a key it no longer finds, or cannot look up (the
        database away), is dropped, and the next request looks it up itself."""
        while True:
            parsed = await self._due.get()
            found: VerifiedKey | None = None
            try:
                found = await look_up(parsed)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("key_refresh_failed", error=type(exc).__name__)
            finally:
                self._queued.discard(parsed.key_hash)
                self._due.task_done()
            if found is None:
                self._entries.pop(parsed.key_hash, None)

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
