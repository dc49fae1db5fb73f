"""Realistic data: 1,000 tenants x 50 cards of 300-800 bytes of content, and a key per tenant;
plus one search tenant of 2,000 cards in a vocabulary of a few thousand English words, for the
search (S) and context (C) operations. Every card is embedded (as the service would have done),
so no background embedding competes with the measurements.

Ids are derived from numbers (tenant i, card j) so that pgbench scripts can name the very same
rows with plain SQL expressions: see `tenant_sql` and `card_sql`.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

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
SEARCH_CARDS = 2000
SEARCH_QUERIES = 500


def vocabulary(size: int = 4000) -> list[str]:
    """English-looking words: lower-case alphabetic tokens of cl100k_base, 5 letters or more."""
    from cards_api.search import tokenizer

    encoding = tokenizer.encoding()
    words = set()
    for token in range(encoding.n_vocab - 1000):
        try:
            text = encoding.decode_single_token_bytes(token).decode("ascii").strip()
        except (KeyError, UnicodeDecodeError):
            continue
        if len(text) >= 5 and text.isalpha() and text.islower():
            words.add(text)
    return sorted(words)[:size]


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


async def seed(dsn: str, *, tenants: int, out: Path, search_out: Path) -> None:
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
        search_id = tenant_uuid(tenants + 1)
        vocab = vocabulary()
        search_rows = [
            (
                search_id,
                card_uuid(tenants + 1, j),
                CARD_TYPES[j % len(CARD_TYPES)],
                " ".join(rng.choices(vocab, k=4)).capitalize(),
                json.dumps(
                    {
                        "summary": " ".join(rng.choices(vocab, k=rng.randint(15, 40))),
                        "points": [" ".join(rng.choices(vocab, k=8)) for _ in range(2)],
                    }
                ),
                ["bench"],
            )
            for j in range(1, SEARCH_CARDS + 1)
        ]
        await conn.copy_records_to_table(
            "cards",
            records=search_rows,
            columns=["tenant_id", "id", "card_type", "title", "content", "tags"],
        )
        search_key = auth.generate_key(search_id, secret)
        await conn.execute(
            "INSERT INTO api_keys (tenant_id, name, key_hash, key_hint, scopes) "
            "VALUES ($1, 'bench-search', $2, $3, $4)",
            search_id,
            auth.hash_key(search_key),
            search_key[-4:],
            [s.value for s in auth.Scope],
        )
        await _embed(conn, rows + search_rows)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    with out.open("w") as data:
        for i, key in keys.items():
            cards = " ".join(str(card_uuid(i, j)) for j in range(1, CARDS_PER_TENANT + 1))
            data.write(f"{tenant_uuid(i)} {key} {cards}\n")
    with search_out.open("w") as data:  # the tenant and key, then one query a line
        data.write(f"{search_id} {search_key}\n")
        for _ in range(SEARCH_QUERIES):
            data.write(" ".join(rng.choices(vocab, k=rng.randint(3, 6))) + "\n")


async def _embed(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """What the service would have stored: each card's vector under the default embedder."""
    import numpy as np
    from pgvector.asyncpg import register_vector

    from cards_api.search.embedder import LocalEmbedder
    from cards_api.search.text import card_text

    await register_vector(conn)
    embedder = LocalEmbedder()
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        texts = [card_text(r[3], r[5], json.loads(r[4])) for r in chunk]
        vectors = embedder.embed_now(texts)
        await conn.copy_records_to_table(
            "card_embeddings",
            records=[
                (r[0], r[1], embedder.name, 1, np.array(v, dtype=np.float32))
                for r, v in zip(chunk, vectors, strict=True)
            ],
            columns=["tenant_id", "card_id", "embedder", "version", "embedding"],
        )


def search_texts(dsn: str, search_file: Path) -> tuple[list[str], list[str]]:
    """The search tenant's cards as texts (what the peer indexes) and the queries."""
    import asyncio

    from cards_api.search.text import card_text

    lines = search_file.read_text().splitlines()
    tenant_id = uuid.UUID(lines[0].split()[0])

    async def fetch() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT title, tags, content FROM cards WHERE tenant_id = $1 ORDER BY id",
                tenant_id,
            )
        finally:
            await conn.close()
        return [card_text(r["title"], r["tags"], json.loads(r["content"])) for r in rows]

    return asyncio.run(fetch()), lines[1:]
