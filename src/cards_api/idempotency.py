"""Idempotency-Key handling: the only place that knows its rules.

Following Stripe's practice and the IETF draft "The Idempotency-Key HTTP Header Field":

- a key is scoped to the tenant and lives `CARDS_IDEMPOTENCY_TTL` seconds;
- its record holds a fingerprint of the request (method, path, canonical JSON body) and, once
  the request succeeded, the exact status and body of its response;
- the record is written in the same transaction as the request's own changes, so a crash or
  an error stores nothing and a retry simply runs again;
- the same key with the same request replays the stored response byte for byte
  (`Idempotent-Replayed: true`); with a different request it is a 422 and nothing changes;
- a second request with the key while the first is still running waits for the first's
  transaction (the record's row is locked until then) and replays its response, or gets a 409
  when the wait exceeds the lock timeout. Either way there is never a second set of changes,
  whatever the number of API processes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import orjson
import structlog
from starlette.responses import Response

from cards_api import housekeeping, metrics
from cards_api.db.queries import idempotency as records
from cards_api.db.types import Connection
from cards_api.errors import BadRequest, IdempotencyKeyReused, RequestInProgress
from cards_api.limits import MAX_IDEMPOTENCY_KEY_CHARS

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
JSON = "application/json"
_KEY = re.compile(rf"^[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}$")

log = structlog.get_logger("cards_api.idempotency")


def parse_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _KEY.match(value):
        raise BadRequest(
            f"the {HEADER} header must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
        )
    return value


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """SHA-256 over method, path and the body as canonical JSON (sorted keys, no spaces)."""
    canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Keyed:
    """A request that carries an Idempotency-Key: the key and the request's fingerprint."""

    key: str
    fingerprint: bytes


def keyed(header: str | None, method: str, path: str, body: bytes) -> Keyed | None:
    """The request's key and fingerprint (None without the header); a 400 for a bad key.

    Called before the request's transaction begins: nothing here touches the database.
    """
    key = parse_key(header)
    if key is None:
        return None
    return Keyed(key=key, fingerprint=fingerprint(method, path, body))


async def respond_once(
    conn: Connection,
    *,
    tenant_id: UUID,
    request: Keyed | None,
    ttl_seconds: int,
    after_commit: list[Callable[[], None]],
    produce: Callable[[], Awaitable[StoredResponse]],
) -> Response:
    """Run `produce` at most once per key, inside the caller's transaction, and answer.

    Without a key, `produce` runs and its response is sent. With one: the key is claimed (or the
    stored response replayed, `Idempotent-Replayed: true`), `produce` runs, and its response is
    stored in the same transaction before it is sent (`Idempotent-Replayed: false`). Any route
    becomes idempotent by wrapping its work in this one call.
    """
    if request is None:
        result = await produce()
        return Response(result.body, status_code=result.status, media_type=JSON)
    stored = await begin(
        conn,
        tenant_id=tenant_id,
        key=request.key,
        fingerprint=request.fingerprint,
        ttl_seconds=ttl_seconds,
    )
    if stored is not None:
        after_commit.append(metrics.record_idempotent_replay)
        return Response(
            stored.body,
            status_code=stored.status,
            media_type=JSON,
            headers={REPLAYED_HEADER: "true"},
        )
    result = await produce()
    await finish(conn, tenant_id=tenant_id, key=request.key, response=result)
    return Response(
        result.body,
        status_code=result.status,
        media_type=JSON,
        headers={REPLAYED_HEADER: "false"},
    )


async def begin(
    conn: Connection, *, tenant_id: UUID, key: str, fingerprint: bytes, ttl_seconds: int
) -> StoredResponse | None:
    """Claim `key` for this request, or return the response to replay instead.

    Raises IdempotencyKeyReused (422) when the key belongs to a different request, and
    RequestInProgress (409) when its first request is still running after the lock timeout.
    """
    try:
        claimed = await records.reserve(
            conn, tenant_id=tenant_id, key=key, fingerprint=fingerprint, ttl_seconds=ttl_seconds
        )
    except asyncpg.exceptions.LockNotAvailableError:
        raise RequestInProgress(
            f"a request with this {HEADER} is still in progress; retry shortly",
        ) from None
    if claimed:
        return None
    stored = await records.find(conn, tenant_id=tenant_id, key=key)
    if stored is None or stored["response_status"] is None:  # pragma: no cover - see docstring
        raise RequestInProgress(f"a request with this {HEADER} is still in progress")
    if bytes(stored["fingerprint"]) != fingerprint:
        raise IdempotencyKeyReused(
            f"this {HEADER} was used with a different request; use a new key for a new request"
        )
    return StoredResponse(status=stored["response_status"], body=bytes(stored["response_body"]))


async def finish(conn: Connection, *, tenant_id: UUID, key: str, response: StoredResponse) -> None:
    await records.complete(
        conn, tenant_id=tenant_id, key=key, status=response.status, body=response.body
    )


async def purge_expired(pool: asyncpg.Pool, *, batch: int = 1000) -> int:
    """Delete expired records of every tenant in small batches, through the one function the
    app role may call for it (it runs as the maintenance role, which may do nothing else)."""
    return await housekeeping.purge_idempotency_records(pool, batch=batch)
