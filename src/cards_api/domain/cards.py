"""Card rules: batches, retrieval, listing, optimistic concurrency, archiving, history.

Functions here take the request's connection (already bound to the tenant) and never commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID, uuid4

import asyncpg
import orjson

from cards_api.db.queries import cards as cards_q
from cards_api.db.queries import tenancy as tenancy_q
from cards_api.db.queries import versions as versions_q
from cards_api.db.queries.search import Filters
from cards_api.db.types import Connection, Row
from cards_api.domain import search
from cards_api.domain.schemas import BatchCreateRequest, CardPatch, RetrieveRequest
from cards_api.domain.search import Plan
from cards_api.errors import NotFound, PreconditionFailed, ValidationFailed
from cards_api.pagination import (
    Page,
    decode_time_id,
    decode_version,
    encode_version,
    page_of,
    time_id_cursor,
)
from cards_api.search.indexes import SearchIndexes


def card_not_found(card_id: UUID) -> NotFound:
    # The same answer for a card that never existed, was archived or is another tenant's.
    return NotFound(f"card {card_id} not found")


@dataclass(frozen=True, slots=True)
class BatchResult:
    rows: list[asyncpg.Record]
    created: int
    updated: int


def _reject_duplicate_refs(request: BatchCreateRequest) -> None:
    seen: dict[tuple[str, str], int] = {}
    errors = []
    for index, card in enumerate(request.cards):
        if card.external_ref is None:
            continue
        ref = (card.card_type.value, card.external_ref)
        if ref in seen:
            errors.append(
                {
                    "loc": ["body", "cards", index, "external_ref"],
                    "msg": f"duplicates cards[{seen[ref]}]: (card_type, external_ref) must be "
                    "unique within a batch",
                }
            )
        else:
            seen[ref] = index
    if errors:
        first = errors[0]
        raise ValidationFailed(
            f"body.cards.{first['loc'][2]}.external_ref: {first['msg']}", errors=errors
        )


async def create_batch(
    conn: Connection,
    *,
    tenant_id: UUID,
    request: BatchCreateRequest,
    vectors: tuple[str, Sequence[list[float]]] | None = None,
) -> BatchResult:
    """Insert or upsert (by external_ref) every card at once, with their vectors when given (the
    embedder's name and a vector per card, in request order); the rows come in request order."""
    _reject_duplicate_refs(request)
    payload = [
        {
            "id": uuid4(),
            "card_type": card.card_type.value,
            "title": card.title,
            "content": card.content,
            "tags": card.tags,
            "external_ref": card.external_ref,
        }
        for card in request.cards
    ]
    rows = await cards_q.upsert_batch(
        conn, tenant_id=tenant_id, cards_json=orjson.dumps(payload).decode(), vectors=vectors
    )
    created = sum(1 for row in rows if row["inserted"])
    return BatchResult(rows=rows, created=created, updated=len(rows) - created)


async def retrieve(
    conn: Connection,
    *,
    tenant_id: UUID,
    request: RetrieveRequest,
    plan: Plan | None,
    indexes: SearchIndexes | None = None,
) -> tuple[Sequence[Row], list[UUID]]:
    """Cards for a workflow; with `card_ids`, in the order asked plus the ids not found. With a
    query (`plan`), ranked best first, each row carrying its `score`.

    `conn` may be outside any transaction (a deferred session): by ids, or ranked from a search
    index, the read is one self-binding statement; anything else binds a transaction first."""
    card_types = [t.value for t in request.card_types] if request.card_types else None
    wanted = list(dict.fromkeys(request.card_ids)) if request.card_ids is not None else None
    limit = len(wanted) if wanted is not None else request.limit
    if plan is not None:
        rows = await search.rank(
            conn,
            plan,
            tenant_id=tenant_id,
            filters=Filters(ids=wanted, card_types=card_types, tags=request.tags),
            limit=limit,
            indexes=indexes,
        )
    elif wanted is not None:
        rows = await cards_q.cards_by_ids(
            conn, tenant_id=tenant_id, ids=wanted, card_types=card_types, tags=request.tags
        )
    else:
        await tenancy_q.ensure_bound(conn, tenant_id=tenant_id)
        rows = await cards_q.find_cards(
            conn,
            tenant_id=tenant_id,
            card_types=card_types,
            tags=request.tags,
            limit=limit,
        )
    if wanted is None:
        return rows, []
    found = {row["id"]: row for row in rows}
    return [found[i] for i in wanted if i in found], [i for i in wanted if i not in found]


async def list_cards(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_type: str | None,
    tag: str | None,
    limit: int,
    cursor: str | None,
) -> Page[asyncpg.Record]:
    rows = await cards_q.list_page(
        conn,
        tenant_id=tenant_id,
        card_type=card_type,
        tag=tag,
        after=decode_time_id(cursor) if cursor else None,
        limit=limit + 1,
    )
    return page_of(rows, limit, time_id_cursor)


async def get_card(conn: Connection, *, tenant_id: UUID, card_id: UUID) -> asyncpg.Record:
    row = await cards_q.get_card(conn, tenant_id=tenant_id, card_id=card_id)
    if row is None:
        raise card_not_found(card_id)
    return row


async def _stale_or_missing(
    conn: Connection, *, tenant_id: UUID, card_id: UUID, if_match: Sequence[int] | None
) -> Exception:
    """Why a conditional write matched nothing: the card is gone, or its version moved on."""
    current = await cards_q.get_card(conn, tenant_id=tenant_id, card_id=card_id)
    if current is None or if_match is None:
        return card_not_found(card_id)
    return PreconditionFailed(
        f"If-Match does not match the card's current version {current['version']}"
    )


async def patch_card(
    conn: Connection,
    *,
    tenant_id: UUID,
    card_id: UUID,
    patch: CardPatch,
    if_match: list[int] | None,
) -> asyncpg.Record:
    row = await cards_q.update_card(
        conn,
        tenant_id=tenant_id,
        card_id=card_id,
        title=patch.title,
        content_json=orjson.dumps(patch.content).decode() if patch.content is not None else None,
        tags=patch.tags,
        expected_versions=if_match,
    )
    if row is None:
        raise await _stale_or_missing(conn, tenant_id=tenant_id, card_id=card_id, if_match=if_match)
    return row


async def archive_card(
    conn: Connection, *, tenant_id: UUID, card_id: UUID, if_match: list[int] | None
) -> None:
    archived = await cards_q.archive_card(
        conn, tenant_id=tenant_id, card_id=card_id, expected_versions=if_match
    )
    if not archived:
        raise await _stale_or_missing(conn, tenant_id=tenant_id, card_id=card_id, if_match=if_match)


Position = TypeVar("Position")


@dataclass(frozen=True, slots=True)
class CardRows(Generic[Position]):
    """One kind of row that belongs to a card (its versions, its usage events), paged newest
    first: how a cursor becomes a position, how a page after it is fetched, and a row's cursor."""

    decode: Callable[[str], Position]
    fetch: Callable[[Connection, UUID, UUID, Position | None, int], Awaitable[list[asyncpg.Record]]]
    cursor_after: Callable[[asyncpg.Record], str]


async def page_of_card(
    conn: Connection,
    rows: CardRows[Position],
    *,
    tenant_id: UUID,
    card_id: UUID,
    limit: int,
    cursor: str | None,
) -> Page[asyncpg.Record]:
    """A page of a live card's rows; 404 for a card that is unknown, archived or not the
    tenant's (the same answer for each)."""
    if not await cards_q.card_exists(conn, tenant_id=tenant_id, card_id=card_id):
        raise card_not_found(card_id)
    position = rows.decode(cursor) if cursor else None
    fetched = await rows.fetch(conn, tenant_id, card_id, position, limit + 1)
    return page_of(fetched, limit, rows.cursor_after)


VERSIONS = CardRows(
    decode=decode_version,
    fetch=lambda conn, tenant_id, card_id, before, limit: versions_q.versions_page(
        conn, tenant_id=tenant_id, card_id=card_id, before_version=before, limit=limit
    ),
    cursor_after=lambda row: encode_version(row["version"]),
)
