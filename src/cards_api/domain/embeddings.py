"""Keeping cards' embeddings current as they are written.

A batch's vectors are computed from the request before its transaction begins (no connection
waits on the embedder) and stored with the cards. A PATCH changes a card the request does not
hold whole, so its vector is computed from the updated row: inside the transaction when the
embedder is local (on the loop when its words are known, else in a thread), after the commit
by the background worker when it is remote. Whenever an embedding cannot be had, the write
still succeeds: the card is pending, found by text, and the worker embeds it later (the cards
table is the durable outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg
import orjson
import structlog

from cards_api.db.queries import embeddings as embeddings_q
from cards_api.db.types import Connection
from cards_api.domain.schemas import CardCreate
from cards_api.search.embedder import Embedder, EmbedderUnavailable, Vector
from cards_api.search.text import card_text

log = structlog.get_logger("cards_api.embeddings")


async def for_new_cards(embedder: Embedder, cards: Sequence[CardCreate]) -> list[Vector] | None:
    """Vectors for a batch, or None when the embedder cannot answer now."""
    texts = [card_text(card.title, card.tags, card.content) for card in cards]
    try:
        return await embedder.embed(texts)
    except EmbedderUnavailable as exc:
        log.warning("batch_embedding_deferred", cards=len(texts), error=str(exc))
        return None


async def store(
    conn: Connection,
    embedder: Embedder,
    *,
    tenant_id: UUID,
    rows: Sequence[asyncpg.Record],
    vectors: Sequence[Vector],
) -> None:
    await embeddings_q.store_embeddings(
        conn,
        tenant_id=tenant_id,
        embedder=embedder.name,
        cards=[(row["id"], row["version"], v) for row, v in zip(rows, vectors, strict=True)],
    )


async def refresh_row(
    conn: Connection, embedder: Embedder, *, tenant_id: UUID, row: asyncpg.Record
) -> bool:
    """Embed a changed card inside its transaction when the embedder is local; False when that
    is left to the background worker."""
    if not embedder.local:
        return False
    text = card_text(row["title"], row["tags"], orjson.loads(row["content"]))
    (vector,) = await embedder.embed([text])
    await store(conn, embedder, tenant_id=tenant_id, rows=[row], vectors=[vector])
    return True
