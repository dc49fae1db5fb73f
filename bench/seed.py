"""Realistic data: 1,000 tenants x 50 cards of 300-800 bytes of content, and a key per tenant.

Ids are derived from numbers (tenant i, card j) so that pgbench scripts can name the very same
rows with plain SQL expressions: see `tenant_sql` and `card_sql`.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import asyncpg

from cards_api import auth
from cards_api.db.queries.keys import key_tag_secret
from cards_api.domain.schemas import CardType

WORDS = [
    "widgets", "reliability", "audience", "pricing", "engineering", "newsletter", "growth",
    "customers", "platform", "security", "analytics", "brand", "launch", "roadmap", "support",
]  # fmt: skip
CARD_TYPES = [t.value for t in CardType]
CARDS_PER_TENANT = 50


def tenant_uuid(i: int) -> uuid.UUID:
    return uuid.UUID(f"a0000000-0000-4000-8000-{i:012x}")


def card_uuid(i: int, j: int) -> uuid.UUID:
    return uuid.UUID(f"c{j:07x}-0000-4000-8000-{i:012x}")


def tenant_sql(var: str = "t") -> str:
    """`tenant_uuid(:t)` as a pgbench SQL expression (text)."""
    return f"('a0000000-0000-4000-8000-' || lpad(to_hex(CAST(:{var} AS int)), 12, '0'))"


def card_sql(card_var: str, tenant_var: str = "t") -> str:
    """`card_uuid(:t, :j)` as a pgbench SQL expression (uuid)."""
    return (
        f"('c' || lpad(to_hex(CAST(:{card_var} AS int)), 7, '0') || '-0000-4000-8000-' "
        f"|| lpad(to_hex(CAST(:{tenant_var} AS int)), 12, '0'))::uuid"
    )


def _content(rng: random.Random) -> str:
    target = rng.randint(300, 800)
    points: list[str] = []
    body = {"summary": " ".join(rng.choices(WORDS, k=12)), "points": points}
    while len(json.dumps(body)) < target:
        points.append(" ".join(rng.choices(WORDS, k=rng.randint(3, 8))))
    return json.dumps(body)


async def seed(dsn: str, *, tenants: int, out: Path) -> None:
    """Insert the data as the owner and write the wrk data file (`tenant key card...` lines)."""
    rng = random.Random(20251027)
    conn = await asyncpg.connect(dsn)
    try:
        rows = [
            (
                tenant_uuid(i),
                card_uuid(i, j),
                CARD_TYPES[j % len(CARD_TYPES)],
                f"{CARD_TYPES[j % len(CARD_TYPES)].title()} card {j} of tenant {i}",
                _content(rng),
                ["bench", rng.choice(WORDS)],
            )
            for i in range(1, tenants + 1)
            for j in range(1, CARDS_PER_TENANT + 1)
        ]
        await conn.copy_records_to_table(
            "cards",
            records=rows,
            columns=["tenant_id", "id", "card_type", "title", "content", "tags"],
        )
        secret = await key_tag_secret(conn)
        keys = {i: auth.generate_key(tenant_uuid(i), secret) for i in range(1, tenants + 1)}
        await conn.copy_records_to_table(
            "api_keys",
            records=[
                (
                    tenant_uuid(i),
                    "bench",
                    auth.hash_key(key),
                    key[-4:],
                    [s.value for s in auth.Scope],
                )
                for i, key in keys.items()
            ],
            columns=["tenant_id", "name", "key_hash", "key_hint", "scopes"],
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    with out.open("w") as data:
        for i, key in keys.items():
            cards = " ".join(str(card_uuid(i, j)) for j in range(1, CARDS_PER_TENANT + 1))
            data.write(f"{tenant_uuid(i)} {key} {cards}\n")
