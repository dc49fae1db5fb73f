"""API keys: their format, hashing, scopes, issuing and revoking.

A key looks like `cards_<65 base62 chars><6 base62 chars><11 base62 chars>`:

- the recognisable `cards_` prefix lets secret scanners (and people) spot a leaked key;
- the body encodes the tenant id (16 bytes) and 32 random bytes (256 bits of secret), so the
  key can be looked up inside its tenant's row-level-security context, and a key presented
  with another tenant's `X-Tenant-ID` is told apart from an unknown one;
- the next six characters are a CRC-32 of the body, so a mistyped or truncated key is refused
  without a database round trip (as public token formats do);
- the last eleven are a 64-bit HMAC-SHA256 tag of all that under the deployment's own secret
  (table `deployment_secrets`), so a forged key, however well formed, is refused without a
  database round trip too: its CRC anyone can compute, its tag only the deployment.

Keys issued before tags existed (77 characters, no tag) keep working: they are checked by
look-up, and failed look-ups are rate-limited per client address (`tenancy.authenticate`).

Only the SHA-256 of the whole key is stored; the key itself is shown once, when issued.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

import asyncpg

from cards_api.db.queries import keys as keys_q
from cards_api.db.types import Connection

KEY_PREFIX = "cards_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {char: i for i, char in enumerate(_ALPHABET)}
_SECRET_BYTES = 32
_BODY_BYTES = 16 + _SECRET_BYTES
_BODY_CHARS = 65  # ceil(log62(2 ** (8 * 48)))
_CHECK_CHARS = 6  # ceil(log62(2 ** 32))
_TAG_BYTES = 8
_TAG_CHARS = 11  # ceil(log62(2 ** 64))
LEGACY_KEY_LENGTH = len(KEY_PREFIX) + _BODY_CHARS + _CHECK_CHARS
KEY_LENGTH = LEGACY_KEY_LENGTH + _TAG_CHARS


class Scope(StrEnum):
    CARDS_READ = "cards:read"
    CARDS_WRITE = "cards:write"
    USAGE_WRITE = "usage:write"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)


def _b62encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    if value:
        raise ValueError("value does not fit the width")
    return "".join(reversed(chars))


def _b62decode(text: str) -> int | None:
    value = 0
    for char in text:
        digit = _INDEX.get(char)
        if digit is None:
            return None
        value = value * 62 + digit
    return value


def _checksum(body: str) -> str:
    return _b62encode(zlib.crc32(body.encode("ascii")), _CHECK_CHARS)


def _tag(untagged: str, secret: bytes) -> str:
    digest = hmac.new(secret, untagged.encode("ascii"), hashlib.sha256).digest()
    return _b62encode(int.from_bytes(digest[:_TAG_BYTES], "big"), _TAG_CHARS)


def generate_key(tenant_id: UUID, secret: bytes) -> str:
    """A new key for `tenant_id`, tagged under the deployment's `secret`."""
    raw = tenant_id.bytes + secrets.token_bytes(_SECRET_BYTES)
    body = _b62encode(int.from_bytes(raw, "big"), _BODY_CHARS)
    untagged = f"{KEY_PREFIX}{body}{_checksum(body)}"
    return untagged + _tag(untagged, secret)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class ParsedKey:
    tenant_id: UUID
    key_hash: bytes


def parse_key(key: str, secret: bytes) -> ParsedKey | None:
    """The tenant and hash of a well-formed key whose tag `secret` confirms (or of a legacy,
    untagged key); None for anything else. No I/O."""
    if len(key) == KEY_LENGTH:
        untagged = key[:LEGACY_KEY_LENGTH]
        if not hmac.compare_digest(_tag(untagged, secret), key[LEGACY_KEY_LENGTH:]):
            return None
    elif len(key) != LEGACY_KEY_LENGTH:
        return None
    if not key.startswith(KEY_PREFIX):
        return None
    body = key[len(KEY_PREFIX) : len(KEY_PREFIX) + _BODY_CHARS]
    check = key[len(KEY_PREFIX) + _BODY_CHARS : LEGACY_KEY_LENGTH]
    value = _b62decode(body)
    if value is None or value >= 1 << (8 * _BODY_BYTES):
        return None
    if not hmac.compare_digest(_checksum(body), check):
        return None
    raw = value.to_bytes(_BODY_BYTES, "big")
    return ParsedKey(tenant_id=UUID(bytes=raw[:16]), key_hash=hash_key(key))


async def find_key_scopes(conn: Connection, key: ParsedKey) -> frozenset[Scope] | None:
    """Scopes of an active key, in one statement bound to the key's own tenant."""
    row = await keys_q.find_active_key(conn, tenant_id=key.tenant_id, key_hash=key.key_hash)
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), key.key_hash):
        return None
    return frozenset(Scope(s) for s in row["scopes"])


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: UUID
    tenant_id: UUID
    name: str
    scopes: list[str]
    key_hint: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> KeyInfo:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            name=row["name"],
            scopes=list(row["scopes"]),
            key_hint=row["key_hint"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )


@dataclass(frozen=True, slots=True)
class IssuedKey:
    info: KeyInfo
    key: str


def _ordered(scopes: frozenset[Scope] | set[Scope]) -> list[str]:
    return [scope.value for scope in Scope if scope in scopes]


async def issue_key(
    conn: Connection, *, tenant_id: UUID, scopes: set[Scope], name: str
) -> IssuedKey:
    key = generate_key(tenant_id, await keys_q.key_tag_secret(conn))
    row = await keys_q.insert_key(
        conn,
        tenant_id=tenant_id,
        name=name,
        key_hash=hash_key(key),
        key_hint=key[-4:],
        scopes=_ordered(scopes or set(ALL_SCOPES)),
    )
    return IssuedKey(info=KeyInfo.from_record(row), key=key)


async def list_keys(conn: Connection, *, tenant_id: UUID) -> list[KeyInfo]:
    return [KeyInfo.from_record(row) for row in await keys_q.list_keys(conn, tenant_id=tenant_id)]


async def revoke_key(conn: Connection, *, key_id: UUID) -> KeyInfo | None:
    row = await keys_q.revoke_key(conn, key_id=key_id)
    return KeyInfo.from_record(row) if row is not None else None
