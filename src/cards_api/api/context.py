"""Context routes: assemble prompt-ready context for a task, read a past context back, and say
how search is configured (SPEC v1.1)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cards_api import metrics
from cards_api.api.bodies import json_body
from cards_api.api.openapi import header, json_request, problems
from cards_api.api.responses import json_response
from cards_api.api.security import CardsRead
from cards_api.api.transaction import tenant_session
from cards_api.auth import Scope
from cards_api.db.queries import embeddings as embeddings_q
from cards_api.domain import contexts, search
from cards_api.domain.responses import ContextRecord, ContextResponse, SearchInfo
from cards_api.domain.schemas import ContextRequest, SearchMode
from cards_api.search import tokenizer

router = APIRouter(prefix="/api/v1", tags=["context"])

USAGE_RECORDED = "X-Usage-Recorded"


@router.post(
    "/context",
    response_model=ContextResponse,
    responses={
        200: {
            "headers": {
                USAGE_RECORDED: header(
                    "With workflow_id: how many new usage events this context recorded",
                    {"type": "integer"},
                )
            }
        },
        **problems(400, 401, 403, 413, 415, 422),
    },
    openapi_extra=json_request(ContextRequest),
)
async def build_context(request: Request, principal: CardsRead) -> Response:
    """The cards a task needs, whole and best first, as prompt text within `token_budget`
    tokens (exact cl100k_base count). With `workflow_id`, usage is recorded for each card
    (scope `usage:write` too)."""
    body = await json_body(request, ContextRequest)
    if body.workflow_id is not None:
        principal.require(Scope.USAGE_WRITE)
    state = request.app.state
    plan = await search.plan(state.embedder, body.task, SearchMode.HYBRID)
    async with tenant_session(request, principal) as session:
        result = await contexts.assemble(
            session.conn,
            plan,
            tenant_id=session.tenant_id,
            request=body,
            ttl_seconds=state.settings.context_ttl,
            indexes=state.search_indexes,
        )

        def count() -> None:
            metrics.record_context(result.tokens)
            for card_type in result.recorded_types:
                metrics.record_usage_event(
                    card_type=card_type,
                    workflow_type=body.workflow_type or "",
                    tenant_id=session.tenant_id,
                )

        session.after_commit.append(count)
    payload = {
        "context_id": result.context_id,
        "text": result.text,
        "tokens": result.tokens,
        "token_budget": body.token_budget,
        "tokenizer": tokenizer.NAME,
        "format": body.format.value,
        "cards": result.cards,
        "omitted": result.omitted,
    }
    return json_response(payload, headers={USAGE_RECORDED: str(len(result.recorded_types))})


@router.get(
    "/contexts/{context_id}",
    response_model=ContextRecord,
    responses=problems(400, 401, 403, 404, 422),
)
async def get_context(request: Request, principal: CardsRead, context_id: UUID) -> Response:
    """What a context held (cards with their ids and versions), for audit: rebuild the prompt
    with `GET /cards/{id}/versions`. Kept `CARDS_CONTEXT_TTL` seconds."""
    async with tenant_session(request, principal) as session:
        row = await contexts.get(session.conn, tenant_id=session.tenant_id, context_id=context_id)
    return json_response(
        {
            "context_id": str(row["id"]),
            "task": row["task"],
            "format": row["format"],
            "tokens": row["tokens"],
            "token_budget": row["token_budget"],
            "tokenizer": row["tokenizer"],
            "cards": contexts.json_field(row["cards"]),
            "omitted": contexts.json_field(row["omitted"]),
            "workflow_id": row["workflow_id"],
            "workflow_type": row["workflow_type"],
            "created_at": row["created_at"],
        }
    )


@router.get("/search/info", response_model=SearchInfo, responses=problems(400, 401, 403))
async def search_info(request: Request, principal: CardsRead) -> Response:
    """The embedder and tokenizer in use, and how many of the tenant's cards still wait for an
    embedding (they are found by text until then)."""
    embedder = request.app.state.embedder
    async with tenant_session(request, principal) as session:
        pending = await embeddings_q.count_pending(
            session.conn, tenant_id=session.tenant_id, embedder=embedder.name
        )
    return json_response(
        {
            "embedder": embedder.name,
            "dimension": embedder.dimension,
            "pending": pending,
            "tokenizer": tokenizer.NAME,
        }
    )
