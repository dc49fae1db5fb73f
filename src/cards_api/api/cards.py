"""Card routes: thin adapters from HTTP to `domain.cards`."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from cards_api import idempotency, limits, metrics
from cards_api.api.deps import (
    authorize,
    etag,
    if_match_versions,
    json_body,
    settings_of,
    tenant_session,
)
from cards_api.api.openapi import header, json_request, problems
from cards_api.auth import Scope
from cards_api.domain import cards, render
from cards_api.domain.schemas import (
    BatchCreateRequest,
    BatchCreateResponse,
    Card,
    CardPage,
    CardPatch,
    CardType,
    CardVersions,
    RetrieveRequest,
    RetrieveResponse,
    Tag,
)

router = APIRouter(prefix="/api/v1/cards", tags=["cards"])

JSON = "application/json"
ETAG_HEADER = header('The card\'s version as an entity tag, e.g. "3"; send it in If-Match')
Limit = Annotated[
    int,
    Query(
        ge=1, le=limits.MAX_PAGE_LIMIT, description=f"page size, at most {limits.MAX_PAGE_LIMIT}"
    ),
]
# A plain optional string in the OpenAPI document (an empty value counts as absent): the
# nullable form drove Schemathesis into a CPython 3.11 crash while it mutated the header.
IfMatchHeader = Annotated[
    str,
    Header(
        alias="If-Match",
        description='Only if the card is at this version: its ETag, e.g. "3" (or W/"3", a '
        "comma-separated list, or *); a stale version is a 412, anything else a 400",
    ),
]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page")
]


def _card_response(row: asyncpg.Record) -> Response:
    headers = {"ETag": etag(row["version"])}
    return Response(render.dumps(render.card(row)), media_type=JSON, headers=headers)


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
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="Makes retries safe: the same key and request replay the first response",
        ),
    ] = None,
) -> Response:
    """Create or upsert (by `external_ref`) 1-100 cards, all or none."""
    principal = await authorize(request, Scope.CARDS_WRITE)
    body = await json_body(request, BatchCreateRequest)
    key = idempotency.parse_key(idempotency_key)
    fingerprint = (
        idempotency.fingerprint(request.method, request.url.path, await request.body())
        if key is not None
        else b""
    )
    async with tenant_session(request, principal) as session:
        if key is not None:
            stored = await idempotency.begin(
                session.conn,
                tenant_id=session.tenant_id,
                key=key,
                fingerprint=fingerprint,
                ttl_seconds=settings_of(request).idempotency_ttl,
            )
            if stored is not None:
                session.after_commit.append(metrics.IDEMPOTENCY_REPLAYS.inc)
                return Response(
                    stored.body,
                    status_code=stored.status,
                    media_type=JSON,
                    headers={idempotency.REPLAYED_HEADER: "true"},
                )
        result = await cards.create_batch(session.conn, tenant_id=session.tenant_id, request=body)
        payload = render.dumps(
            {
                "cards": [render.card(row) for row in result.rows],
                "created": result.created,
                "updated": result.updated,
            }
        )
        headers = {}
        if key is not None:
            await idempotency.finish(
                session.conn,
                tenant_id=session.tenant_id,
                key=key,
                response=idempotency.StoredResponse(status=201, body=payload),
            )
            headers[idempotency.REPLAYED_HEADER] = "false"
    return Response(payload, status_code=201, media_type=JSON, headers=headers)


@router.post(
    "/retrieve",
    response_model=RetrieveResponse,
    responses=problems(400, 401, 403, 413, 415, 422),
    openapi_extra=json_request(RetrieveRequest),
)
async def retrieve_cards(request: Request) -> Response:
    """Fetch cards for a workflow by ids (order kept), types, tags or full-text query."""
    principal = await authorize(request, Scope.CARDS_READ)
    body = await json_body(request, RetrieveRequest)
    async with tenant_session(request, principal) as session:
        rows, missing = await cards.retrieve(
            session.conn, tenant_id=session.tenant_id, request=body
        )
    payload = render.dumps({"cards": [render.card(row) for row in rows], "missing_ids": missing})
    return Response(payload, media_type=JSON)


@router.get("", response_model=CardPage, responses=problems(400, 401, 403, 422))
async def list_cards(
    request: Request,
    card_type: Annotated[CardType | None, Query(description="only cards of this type")] = None,
    tag: Annotated[Tag | None, Query(description="only cards with this tag")] = None,
    limit: Limit = limits.DEFAULT_PAGE_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """List live cards in creation order, one page at a time."""
    principal = await authorize(request, Scope.CARDS_READ)
    async with tenant_session(request, principal) as session:
        page = await cards.list_cards(
            session.conn,
            tenant_id=session.tenant_id,
            card_type=card_type.value if card_type else None,
            tag=tag,
            limit=limit,
            cursor=cursor,
        )
    payload = render.dumps(
        {"cards": [render.card(row) for row in page.rows], "next_cursor": page.next_cursor}
    )
    return Response(payload, media_type=JSON)


@router.get(
    "/{card_id}",
    response_model=Card,
    responses={200: {"headers": {"ETag": ETAG_HEADER}}, **problems(400, 401, 403, 404, 422)},
)
async def get_card(request: Request, card_id: UUID) -> Response:
    """One card; its `ETag` carries the version for a later conditional PATCH."""
    principal = await authorize(request, Scope.CARDS_READ)
    async with tenant_session(request, principal) as session:
        row = await cards.get_card(session.conn, tenant_id=session.tenant_id, card_id=card_id)
    return _card_response(row)


@router.patch(
    "/{card_id}",
    response_model=Card,
    responses={
        200: {"headers": {"ETag": ETAG_HEADER}},
        **problems(400, 401, 403, 404, 412, 413, 415, 422),
    },
    openapi_extra=json_request(CardPatch),
)
async def patch_card(request: Request, card_id: UUID, if_match: IfMatchHeader = "") -> Response:
    """Change title, content or tags; the version goes up by one. 412 if If-Match is stale."""
    principal = await authorize(request, Scope.CARDS_WRITE)
    body = await json_body(request, CardPatch)
    versions = if_match_versions(if_match)
    async with tenant_session(request, principal) as session:
        row = await cards.patch_card(
            session.conn,
            tenant_id=session.tenant_id,
            card_id=card_id,
            patch=body,
            if_match=versions,
        )
    return _card_response(row)


@router.delete(
    "/{card_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Archived"}, **problems(400, 401, 403, 404, 412, 422)},
)
async def archive_card(request: Request, card_id: UUID, if_match: IfMatchHeader = "") -> Response:
    """Archive the card: it drops out of list, retrieve and usage; its history is kept."""
    principal = await authorize(request, Scope.CARDS_WRITE)
    versions = if_match_versions(if_match)
    async with tenant_session(request, principal) as session:
        await cards.archive_card(
            session.conn, tenant_id=session.tenant_id, card_id=card_id, if_match=versions
        )
    return Response(status_code=204)


@router.get(
    "/{card_id}/versions",
    response_model=CardVersions,
    responses=problems(400, 401, 403, 404, 422),
)
async def card_versions(
    request: Request,
    card_id: UUID,
    limit: Limit = limits.MAX_PAGE_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The card's history, newest first: every version create, upsert and patch produced."""
    principal = await authorize(request, Scope.CARDS_READ)
    async with tenant_session(request, principal) as session:
        page = await cards.card_versions(
            session.conn, tenant_id=session.tenant_id, card_id=card_id, limit=limit, cursor=cursor
        )
    payload = render.dumps(
        {"versions": [render.version(row) for row in page.rows], "next_cursor": page.next_cursor}
    )
    return Response(payload, media_type=JSON)
