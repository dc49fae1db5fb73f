"""`cards-api mcp`: the card store as tools for any MCP client (agents), on the official SDK.

It is a client of a running Cards API through `cards_client`, configured like the SDK and the
CLI (`CARDS_URL`, `CARDS_API_KEY`, `CARDS_TENANT_ID`): it holds no database access of its own,
so the API's authentication, scopes, rate limits and tenancy apply unchanged. Any API error
(404, 403, 422, 429, 503, …) or an unreachable API becomes a tool error carrying the problem's
title and detail, for the model to read; never a crash of the server or a traceback.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from uuid import UUID

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from cards_client import APIError, AsyncCardsClient, CardsError

CardType = Literal[
    "company", "audience", "voice", "insight", "product", "competitor", "topic", "example"
]

INSTRUCTIONS = """Cards API holds a company's knowledge as cards (company, audience, voice,
insight, product, competitor, topic, example). Use search_cards to find cards by meaning,
build_context to get prompt-ready text for a task within a token budget, get_card to read one
card, and record_usage to report that a workflow run used a card."""


@contextlib.asynccontextmanager
async def _api() -> AsyncIterator[AsyncCardsClient]:
    """A client of the configured API; its failures as tool errors the model can read."""
    try:
        async with AsyncCardsClient(max_retries=2) as client:
            yield client
    except APIError as exc:
        detail = exc.problem.get("detail") or str(exc)
        raise ToolError(f"{exc.status} {exc.title}: {detail}") from None
    except CardsError as exc:  # transport errors: the API cannot be reached
        raise ToolError(f"Cards API unavailable: {exc}") from None
    except ValueError as exc:  # configuration: no tenant id, say
        raise ToolError(f"Cards API client not configured: {exc}") from None


def _card_text(card: Any) -> str:
    score = f" score {card.score:.4f}" if getattr(card, "score", None) is not None else ""
    content = json.dumps(card.content, ensure_ascii=False)
    about = f"{card.card_type}, id {card.id}, version {card.version}{score}"
    return f"- {card.title} ({about})\n  {content}"


def build_server() -> MCPServer:
    server = MCPServer(name="cards-api", instructions=INSTRUCTIONS)

    @server.tool(
        description="Find the tenant's cards by a free-text query, best first, each with its "
        "id, type, version, relevance score and content."
    )
    async def search_cards(
        query: Annotated[str, Field(min_length=1, max_length=500, description="what to look for")],
        mode: Annotated[
            Literal["text", "semantic", "hybrid"],
            Field(description="text: by words; semantic: by meaning; hybrid: both (best)"),
        ] = "hybrid",
        card_types: Annotated[
            list[CardType] | None, Field(description="only these card types")
        ] = None,
        tags: Annotated[list[str] | None, Field(description="only cards with any of these")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="at most this many cards")] = 10,
    ) -> str:
        async with _api() as api:
            result = await api.retrieve(
                query=query, mode=mode, card_types=card_types, tags=tags, limit=limit
            )
        if not result.cards:
            return "No card matches."
        return "\n".join(_card_text(card) for card in result.cards)

    @server.tool(
        description="Prompt-ready text about a task: the most relevant cards, whole, within a "
        "token budget (exact cl100k_base count), and which cards went in. With workflow_id and "
        "workflow_type, each card's use is recorded for that workflow run."
    )
    async def build_context(
        task: Annotated[str, Field(min_length=1, max_length=2000, description="the task")],
        token_budget: Annotated[int, Field(ge=50, le=32000, description="tokens the text may use")],
        card_types: Annotated[list[CardType] | None, Field(description="only these types")] = None,
        tags: Annotated[list[str] | None, Field(description="only cards with any of these")] = None,
        include: Annotated[
            list[UUID] | None, Field(description="card ids to put first, in this order")
        ] = None,
        format: Annotated[
            Literal["markdown", "json"], Field(description="markdown, or a JSON array")
        ] = "markdown",
        workflow_id: Annotated[str | None, Field(description="the workflow run")] = None,
        workflow_type: Annotated[
            str | None, Field(description="the kind of workflow, e.g. premium_newsletter")
        ] = None,
    ) -> str:
        async with _api() as api:
            context = await api.context(
                task,
                token_budget,
                card_types=card_types,
                tags=tags,
                include=include,
                format=format,
                workflow_id=workflow_id,
                workflow_type=workflow_type,
            )
        cards = ", ".join(f"{c.title} ({c.id} v{c.version})" for c in context.cards) or "none"
        return (
            f"{context.text}\n\n---\ncontext {context.context_id}: {context.tokens} of "
            f"{context.token_budget} {context.tokenizer} tokens; cards: {cards}; omitted: "
            f"{len(context.omitted)}; usage events recorded: {context.usage_recorded}"
        )

    @server.tool(description="One card by its id: type, title, content, tags and version.")
    async def get_card(card_id: Annotated[UUID, Field(description="the card's id")]) -> str:
        async with _api() as api:
            card = await api.get(card_id)
        return card.model_dump_json(indent=2)

    @server.tool(
        description="Record that a workflow run used a card: one event per (workflow_id, card); "
        "the card's usage count goes up on every call."
    )
    async def record_usage(
        card_id: Annotated[UUID, Field(description="the card used")],
        workflow_id: Annotated[str, Field(min_length=1, max_length=200)],
        workflow_type: Annotated[
            str, Field(description="lower-case slug, e.g. premium_newsletter")
        ],
        session_id: Annotated[str | None, Field(max_length=200)] = None,
    ) -> str:
        async with _api() as api:
            used = await api.track_usage(
                card_id, workflow_id=workflow_id, workflow_type=workflow_type, session_id=session_id
            )
        recorded = "a new event was recorded" if used.event_recorded else "already recorded"
        return f"card {used.card_id}: usage_count {used.usage_count}; {recorded}"

    return server
