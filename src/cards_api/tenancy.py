"""Which tenant a request acts for, proven how, and binding its transaction to that tenant.

This is the only module that reads `Authorization` and `X-Tenant-ID`. In `api_key` mode the
key names its tenant; the key is looked up inside that tenant's row-level-security context,
and `X-Tenant-ID` must name the same tenant. In `header` mode (behind a gateway that has
authenticated the caller) `X-Tenant-ID` alone decides, with every scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg
from starlette.datastructures import Headers

from cards_api import auth, stalls
from cards_api.auth import ALL_SCOPES, Scope
from cards_api.db.queries.tenancy import begin_for_tenant
from cards_api.db.types import Connection
from cards_api.errors import BadRequest, Forbidden, Unauthorized
from cards_api.keycache import KeyCache, VerifiedKey
from cards_api.ratelimit import RateLimiter
from cards_api.settings import AuthMode

INVALID_KEY = "the API key is invalid or revoked"  # the same words for every bad key


@dataclass(frozen=True, slots=True)
class Claim:
    """What the headers assert, checked for form but not yet against the database."""

    tenant_header: str | None
    """`X-Tenant-ID` as sent; parsed only after the key is known good (401 before 400)."""
    key: str | None
    """The bearer token as sent (api_key mode), not yet known to be well formed."""
    key_hash: bytes | None


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: UUID
    scopes: frozenset[Scope]

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"the API key lacks the {scope.value} scope")


def tenant_from_header(value: str | None) -> UUID:
    if value is None or not value.strip():
        raise BadRequest("the X-Tenant-ID header is required")
    try:
        return UUID(value.strip())
    except ValueError:
        raise BadRequest("the X-Tenant-ID header must be a UUID") from None


def _bearer(value: str | None) -> str:
    if value is None:
        raise Unauthorized("an API key is required: Authorization: Bearer <key>")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized(INVALID_KEY)
    return token.strip()


def read_claim(headers: Headers, mode: AuthMode) -> Claim:
    """Read the headers; only a missing or non-Bearer `Authorization` fails here (401)."""
    key = _bearer(headers.get("authorization")) if mode is AuthMode.API_KEY else None
    return Claim(
        tenant_header=headers.get("x-tenant-id"),
        key=key,
        key_hash=auth.hash_key(key) if key is not None else None,
    )


@dataclass(slots=True)
class Guards:
    """What authentication consults besides the database, one of each per process."""

    keys: KeyCache
    rate: RateLimiter
    """Requests per key (per tenant in header mode)."""
    failures: RateLimiter
    """Failed authentications per client address."""
    key_secret: bytes = b""
    """The deployment's key-tag secret, read from the database at start-up."""


async def authenticate(
    claim: Claim,
    *,
    pool: asyncpg.Pool,
    guards: Guards,
    client: bytes,
    acquire_timeout: float,
) -> Principal:
    """Prove the claim, in the documented order of checks: 401 (key), 400 (`X-Tenant-ID`),
    429 (rate), 403 (key of another tenant). Scopes are the caller's to require.

    A key not in the cache is looked up by one statement bound to the tenant the key names
    (revision 0011): no connection is held once this returns. A key whose entry has just expired
    answers from it while the key cache looks it up again in the background (`KeyCache.stale`).
    A malformed, mistyped or forged key is refused without any I/O; only look-ups that find
    nothing count against the client address, which is refused (429) before its next look-up
    once it has failed too often.
    """
    if claim.key is None or claim.key_hash is None:
        tenant_id = tenant_from_header(claim.tenant_header)
        guards.rate.take(tenant_id.bytes)
        return Principal(tenant_id=tenant_id, scopes=ALL_SCOPES)
    verified = guards.keys.get(claim.key_hash)
    if verified is None:
        parsed = auth.parse_key(claim.key, guards.key_secret)
        if parsed is None:  # malformed, mistyped or forged (wrong tag): no database work
            raise Unauthorized(INVALID_KEY)
        verified = guards.keys.stale(parsed)  # expired: answers while looked up again
        if verified is None:
            guards.failures.check(client)
            verified = await look_up(
                parsed, pool=pool, keys=guards.keys, acquire_timeout=acquire_timeout
            )
            if verified is None:
                guards.failures.spend(client)
                raise Unauthorized(INVALID_KEY)
    tenant_id = tenant_from_header(claim.tenant_header)
    guards.rate.take(claim.key_hash)
    if verified.tenant_id != tenant_id:
        raise Forbidden("the API key does not belong to the tenant in X-Tenant-ID")
    return Principal(tenant_id=tenant_id, scopes=verified.scopes)


async def look_up(
    parsed: auth.ParsedKey, *, pool: asyncpg.Pool, keys: KeyCache, acquire_timeout: float
) -> VerifiedKey | None:
    """The key's tenant and scopes, None if it is not active; cached when found. Also the
    key cache's background look-up of a key it served expired (`KeyCache.refresh_forever`)."""
    generation = keys.generation
    stalls.key_lookup()
    async with stalls.acquire(pool, timeout=acquire_timeout) as conn:
        # One statement inside its own tenant's row-level-security context (revision 0011).
        scopes = await auth.find_key_scopes(conn, parsed)
    if scopes is None:
        return None
    verified = VerifiedKey(tenant_id=parsed.tenant_id, scopes=scopes)
    keys.put(parsed.key_hash, verified, generation=generation)
    return verified


async def begin(conn: Connection, principal: Principal) -> None:
    """Open the request's transaction bound to the principal's tenant (row-level security).

    The caller owns the transaction from here: it commits or rolls back, also when this raises.
    """
    await begin_for_tenant(conn, tenant_id=principal.tenant_id)
