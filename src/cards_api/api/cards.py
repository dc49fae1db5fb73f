"""Card routes: thin adapters from HTTP to `domain.cards`.

Each route reads in the same order: its principal (a dependency naming the scope), its body,
then its one transaction (`tenant_session`); see `api/transaction.py`.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from cards_api import idempotency, limits
from cards_api.api.bodies import json_body
from cards_api.api.openapi import header, json_request, problems
from cards_api.api.params import Cursor, IfMatch, Limit
from cards_api.api.responses import card_response, card_rows_response, json_response, page_response
from cards_api.api.security import CardsRead, CardsWrite
from cards_api.api.transaction import tenant_session
from cards_api.domain import cards, embeddings, render, search
from cards_api.domain.responses import (
    BatchCreateResponse,
    Card,
    CardPage,
    CardVersions,
    RetrieveResponse,
)
from cards_api.domain.schemas import (
    BatchCreateRequest,
    CardPatch,
    CardType,
    RetrieveRequest,
    Tag,
)

router = APIRouter(prefix="/api/v1/cards", tags=["cards"])

ETAG_HEADER = header('The card\'s version as an entity tag, e.g. "3"; send it in If-Match')
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="Makes retries safe: the same key and request replay the first response",
    ),
]


@router.post(
    "/batch",
    status_code=201,
    response_model=BatchCreateResponse,
    responses={
        201: {
            "description": "Cards created or updated, in request order",
            "headers": {
                idempotency.REPLAYED_HEADER: header(
                    "With an Idempotency-Key: true when this is a stored response replayed"
                )
            },
        },
        **problems(400, 401, 403, 409, 413, 415, 422),
    },
    openapi_extra=json_request(BatchCreateRequest),
)
async def create_cards(
    request: Request, principal: CardsWrite, idempotency_key: IdempotencyKey = None
) -> Response:
    """Create or upsert (by `external_ref`) 1-100 cards, all or none."""
    body = await json_body(request, BatchCreateRequest)
    keyed = idempotency.keyed(
        idempotency_key, request.method, request.url.path, await request.body()
    )
    embedder = request.app.state.embedder
    vectors = await embeddings.for_new_cards(embedder, body.cards)
    async with tenant_session(request, principal) as session:

        async def create() -> idempotency.StoredResponse:
            result = await cards.create_batch(
                session.conn,
                tenant_id=session.tenant_id,
                request=body,
                vectors=(embedder.name, vectors) if vectors is not None else None,
            )
            if vectors is None:
                worker = request.app.state.embedding_worker
                session.after_commit.append(lambda: worker.kick(session.tenant_id))
            payload = {
                "cards": [render.card(row) for row in result.rows],
                "created": result.created,
                "updated": result.updated,
            }
            return idempotency.StoredResponse(status=201, body=render.dumps(payload))

        return await idempotency.respond_once(
            session.conn,
            tenant_id=session.tenant_id,
            request=keyed,
            ttl_seconds=request.app.state.settings.idempotency_ttl,
            after_commit=session.after_commit,
            produce=create,
        )


@router.post(
    "/retrieve",
    response_model=RetrieveResponse,
    responses=problems(400, 401, 403, 413, 415, 422),
    openapi_extra=json_request(RetrieveRequest),
)
async def retrieve_cards(request: Request, principal: CardsRead) -> Response:
    """Fetch cards for a workflow by ids (order kept), types, tags, or a free-text `query`
    ranked by `mode`: `text`, `semantic` or `hybrid` (the default)."""
    body = await json_body(request, RetrieveRequest)
    plan = None
    if body.query is not None:  # embedded before the transaction: no connection waits on it
        plan = await search.plan(request.app.state.embedder, body.query, body.mode)
    # Deferred: by ids, or ranked from a search index, the read is one statement on its own.
    async with tenant_session(request, principal, deferred=True) as session:
        rows, missing = await cards.retrieve(
            session.conn,
            tenant_id=session.tenant_id,
            request=body,
            plan=plan,
            indexes=request.app.state.search_indexes,
        )
    item = render.scored_card if plan is not None else render.card
    return json_response({"cards": [item(row) for row in rows], "missing_ids": missing})


@router.get("", response_model=CardPage, responses=problems(400, 401, 403, 422))
async def list_cards(
    request: Request,
    principal: CardsRead,
    card_type: Annotated[CardType | None, Query(description="only cards of this type")] = None,
    tag: Annotated[Tag | None, Query(description="only cards with this tag")] = None,
    limit: Limit = limits.DEFAULT_PAGE_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """List live cards in creation order (which is commit order), one page at a time."""
    async with tenant_session(request, principal) as session:
        page = await cards.list_cards(
            session.conn,
            tenant_id=session.tenant_id,
            card_type=card_type.value if card_type else None,
            tag=tag,
            limit=limit,
            cursor=cursor,
        )
    return page_response("cards", page, render.card)


@router.get(
    "/{card_id}",
    response_model=Card,
    responses={200: {"headers": {"ETag": ETAG_HEADER}}, **problems(400, 401, 403, 404, 422)},
)
async def get_card(request: Request, principal: CardsRead, card_id: UUID) -> Response:
    """One card; its `ETag` carries the version for a later conditional PATCH."""
    async with tenant_session(request, principal) as session:
        row = await cards.get_card(session.conn, tenant_id=session.tenant_id, card_id=card_id)
    return card_response(row)


@router.patch(
    "/{card_id}",
    response_model=Card,
    responses={
        200: {"headers": {"ETag": ETAG_HEADER}},
        **problems(400, 401, 403, 404, 412, 413, 415, 422),
    },
    openapi_extra=json_request(CardPatch),
)
async def patch_card(
    request: Request, principal: CardsWrite, card_id: UUID, if_match: IfMatch
) -> Response:
    """Change title, content or tags; the version goes up by one. 412 if If-Match is stale."""
    body = await json_body(request, CardPatch)
    async with tenant_session(request, principal) as session:
        row = await cards.patch_card(
            session.conn,
            tenant_id=session.tenant_id,
            card_id=card_id,
            patch=body,
            if_match=if_match,
        )
        state = request.app.state
        if not await embeddings.refresh_row(
            session.conn, state.embedder, tenant_id=session.tenant_id, row=row
        ):
            worker = state.embedding_worker
            session.after_commit.append(lambda: worker.kick(session.tenant_id))
    return card_response(row)


@router.delete(
    "/{card_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Archived"}, **problems(400, 401, 403, 404, 412, 422)},
)
async def archive_card(
    request: Request, principal: CardsWrite, card_id: UUID, if_match: IfMatch
) -> Response:
    """Archive the card: it drops out of list, retrieve and usage; its history is kept."""
    async with tenant_session(request, principal) as session:
        await cards.archive_card(
            session.conn, tenant_id=session.tenant_id, card_id=card_id, if_match=if_match
        )
    return Response(status_code=204)


@router.get(
    "/{card_id}/versions",
    response_model=CardVersions,
    responses=problems(400, 401, 403, 404, 422),
)
async def card_versions(
    request: Request,
    principal: CardsRead,
    card_id: UUID,
    limit: Limit = limits.MAX_PAGE_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The card's history, newest first: every version create, upsert and patch produced."""
    return await card_rows_response(
        request, principal, card_id, cards.VERSIONS, limit, cursor, ("versions", render.version)
    )
