"""Which tenant a request acts for, proven how, and binding its transaction to that tenant.

This is the only module that reads `Authorization` and `X-Tenant-ID`. In `api_key` mode the
key names its tenant; the key is looked up inside that tenant's row-level-security context,
and `X-Tenant-ID` must name the same tenant. In `header` mode (behind a gateway that has
authenticated the caller) `X-Tenant-ID` alone decides, with every scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from starlette.datastructures import Headers

from cards_api import auth
from cards_api.auth import ALL_SCOPES, Scope
from cards_api.db.queries.tenancy import begin_for_tenant
from cards_api.db.types import Connection
from cards_api.errors import BadRequest, Forbidden, Unauthorized
from cards_api.keycache import KeyCache, VerifiedKey
from cards_api.settings import AuthMode

INVALID_KEY = "the API key is invalid or revoked"  # the same words for every bad key


@dataclass(frozen=True, slots=True)
class Claim:
    """What the headers assert, checked for form but not yet against the database."""

    tenant_id: UUID
    key: str | None
    """The bearer token as sent (api_key mode), not yet known to be well formed."""
    key_hash: bytes | None

    @property
    def identity(self) -> bytes:
        """Who is calling, for the rate limit: the key (hashed), or the tenant in header mode."""
        return self.key_hash if self.key_hash is not None else self.tenant_id.bytes


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
    """Parse the headers: 401 before 400, so nothing is said to an unauthenticated caller."""
    key = _bearer(headers.get("authorization")) if mode is AuthMode.API_KEY else None
    return Claim(
        tenant_id=tenant_from_header(headers.get("x-tenant-id")),
        key=key,
        key_hash=auth.hash_key(key) if key is not None else None,
    )


async def begin(conn: Connection, claim: Claim, keys: KeyCache) -> Principal:
    """Open the request's transaction bound to the claimed tenant, and prove the claim.

    The caller owns the transaction from here: it commits or rolls back, also when this raises.
    """
    if claim.key is None or claim.key_hash is None:
        await begin_for_tenant(conn, tenant_id=claim.tenant_id)
        return Principal(tenant_id=claim.tenant_id, scopes=ALL_SCOPES)
    verified = keys.get(claim.key_hash)
    if verified is not None:  # a key verified moments ago: no parsing, no look-up
        await begin_for_tenant(conn, tenant_id=verified.tenant_id)
    else:
        parsed = auth.parse_key(claim.key)
        if parsed is None:
            raise Unauthorized(INVALID_KEY)
        # The key is looked up inside its own tenant's row-level-security context.
        await begin_for_tenant(conn, tenant_id=parsed.tenant_id)
        scopes = await auth.find_key_scopes(conn, parsed)
        if scopes is None:
            raise Unauthorized(INVALID_KEY)
        verified = VerifiedKey(tenant_id=parsed.tenant_id, scopes=scopes)
        keys.put(claim.key_hash, verified)
    if verified.tenant_id != claim.tenant_id:
        raise Forbidden("the API key does not belong to the tenant in X-Tenant-ID")
    return Principal(tenant_id=claim.tenant_id, scopes=verified.scopes)
