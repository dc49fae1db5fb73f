"""Context assembly: the cards a task needs, packed whole into a token budget, as prompt text.

Order: the cards in `include`, as given; then the rest by hybrid relevance to the task, within
the filters and `per_type_limit`. Cards are packed whole in that order; one that does not fit is
left out (`omitted`, reason `budget`) and the next is tried. `tokens` is the exact cl100k_base
count of `text` and never exceeds the budget: each card's cost is counted as it is packed, and
the final text is counted exactly (from its pieces' counts and their joins,
`tokenizer.count_joined`); should joining the pieces have cost a token more than their parts,
the last packed card is dropped until the count fits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from cards_api import limits
from cards_api.db.queries import cards as cards_q
from cards_api.db.queries import contexts as contexts_q
from cards_api.db.queries import usage as usage_q
from cards_api.db.queries.search import Filters
from cards_api.db.types import Connection, Row
from cards_api.domain import search
from cards_api.domain.render import readable
from cards_api.domain.schemas import ContextFormat, ContextRequest
from cards_api.errors import NotFound
from cards_api.search import tokenizer
from cards_api.search.indexes import SearchIndexes

SEPARATOR = "\n\n"
JOIN_TOKENS = 1
"""What joining a piece costs: "\n\n" between markdown pieces, "," between JSON items (and the
array's two brackets are counted once, up front)."""


@dataclass(slots=True)
class Candidate:
    row: Row
    score: float | None

    @property
    def card_type(self) -> str:
        return str(self.row["card_type"])


def _render_block(card_type: str, title: str, content_json: str, fmt: ContextFormat) -> str:
    content = orjson.loads(content_json)
    if fmt is ContextFormat.JSON:
        item = {"card_type": card_type, "title": title, "content": content}
        return orjson.dumps(item).decode()
    body = readable(content)
    return f"### {title}\n{body}" if body else f"### {title}"


@tokenizer.remembered
def _costed_block(
    card_type: str, title: str, content_json: str, fmt: ContextFormat
) -> tuple[str, int]:
    block = _render_block(card_type, title, content_json, fmt)
    return block, tokenizer.count_piece(block)


def _block(candidate: Candidate, fmt: ContextFormat) -> tuple[str, int]:
    """A card's block of text and its token count. Remembered per process, keyed by the card's
    own type, title and content (`tokenizer.remembered`: cards of up to 4,096 characters, 4,096
    of them, tens of MB per process at most): a context offers up to 100 candidates, mostly the
    same cards request after request, and rendering them was the largest share of its Python
    time once their counts were remembered. A changed card has another key, so it is never
    served stale."""
    row = candidate.row
    return _costed_block(row["card_type"], row["title"], row["content"], fmt)


def _heading(card_type: str) -> str:
    return f"## {card_type.capitalize()}"


def _markdown_pieces(packed: list[tuple[Candidate, str]]) -> list[str]:
    """Headings and blocks in order: cards grouped by type, types in the order their first card
    was packed."""
    groups: dict[str, list[str]] = {}
    for candidate, block in packed:
        groups.setdefault(candidate.card_type, []).append(block)
    return [
        piece for card_type, blocks in groups.items() for piece in (_heading(card_type), *blocks)
    ]


def render(packed: list[tuple[Candidate, str]], fmt: ContextFormat) -> tuple[str, int]:
    """The prompt text and its exact count: markdown grouped by card type, counted from its
    pieces' remembered counts (every piece starts with "#", joined by newlines:
    `tokenizer.count_joined`, which spares re-tokenizing ~2,000 tokens a request); or a JSON
    array in packing order, counted whole."""
    if not packed:
        return "", 0
    if fmt is ContextFormat.JSON:
        text = "[" + ",".join(block for _, block in packed) + "]"
        return text, tokenizer.count(text)
    pieces = _markdown_pieces(packed)
    return SEPARATOR.join(pieces), tokenizer.count_joined(pieces, SEPARATOR)


@dataclass(slots=True)
class Packing:
    budget: int
    fmt: ContextFormat
    per_type_limit: dict[str, int]
    packed: list[tuple[Candidate, str]] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)
    omitted: list[dict[str, Any]] = field(default_factory=list)
    used: int = 0
    types: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fmt is ContextFormat.JSON:
            self.used = tokenizer.count("[]")

    def offer(self, candidate: Candidate, *, limited: bool = True) -> None:
        card_type = candidate.card_type
        if limited and self.types.get(card_type, 0) >= self.per_type_limit.get(card_type, 10**9):
            self.omitted.append({"id": str(candidate.row["id"]), "reason": "per_type_limit"})
            return
        block, own = _block(candidate, self.fmt)
        cost = own + JOIN_TOKENS
        if self.fmt is ContextFormat.MARKDOWN and card_type not in self.types:
            cost += tokenizer.count_piece(_heading(card_type)) + JOIN_TOKENS
        if self.used + cost > self.budget:
            self.omitted.append({"id": str(candidate.row["id"]), "reason": "budget"})
            return
        self.packed.append((candidate, block))
        self.costs.append(own)
        self.used += cost
        self.types[card_type] = self.types.get(card_type, 0) + 1

    def text(self) -> tuple[str, int]:
        """The final text and its exact count, within the budget."""
        while True:
            text, tokens = render(self.packed, self.fmt)
            if tokens <= self.budget or not self.packed:
                return text, tokens
            candidate, _ = self.packed.pop()
            self.costs.pop()
            self.omitted.append({"id": str(candidate.row["id"]), "reason": "budget"})


@dataclass(frozen=True, slots=True)
class Assembled:
    context_id: UUID
    text: str
    tokens: int
    cards: list[dict[str, Any]]
    omitted: list[dict[str, Any]]
    recorded_types: list[str]
    """Card types of the usage events this context recorded (one per new event)."""


async def _candidates(
    conn: Connection,
    plan: search.Plan,
    *,
    tenant_id: UUID,
    request: ContextRequest,
    indexes: SearchIndexes | None,
) -> tuple[list[Candidate], list[Candidate], list[dict[str, Any]]]:
    """The included cards (in order), the ranked rest, and the included ids not found."""
    include = list(dict.fromkeys(request.include or []))
    included: list[Candidate] = []
    missing: list[dict[str, Any]] = []
    if include:
        rows = await cards_q.cards_by_ids(
            conn, tenant_id=tenant_id, ids=include, card_types=None, tags=None
        )
        found = {row["id"]: row for row in rows}
        for card_id in include:
            if card_id in found:
                included.append(Candidate(found[card_id], None))
            else:
                missing.append({"id": str(card_id), "reason": "not_found"})
    ranked = await search.rank(
        conn,
        plan,
        tenant_id=tenant_id,
        filters=Filters(
            card_types=[t.value for t in request.card_types] if request.card_types else None,
            tags=request.tags,
        ),
        limit=limits.CONTEXT_CANDIDATES + len(include),
        prompt=True,
        indexes=indexes,
    )
    chosen = set(include)
    rest = [Candidate(row, float(row["score"])) for row in ranked if row["id"] not in chosen]
    return included, rest[: limits.CONTEXT_CANDIDATES], missing


async def assemble(
    conn: Connection,
    plan: search.Plan,
    *,
    tenant_id: UUID,
    request: ContextRequest,
    ttl_seconds: int,
    indexes: SearchIndexes | None = None,
) -> Assembled:
    """Pack, record (and count usage when a workflow is named), in the caller's transaction."""
    included, ranked, missing = await _candidates(
        conn, plan, tenant_id=tenant_id, request=request, indexes=indexes
    )
    packing = Packing(
        budget=request.token_budget,
        fmt=request.format,
        per_type_limit={t.value: n for t, n in (request.per_type_limit or {}).items()},
    )
    for candidate in included:
        packing.offer(candidate, limited=False)
    for candidate in ranked:
        packing.offer(candidate)
    text, tokens = packing.text()
    cards = [
        {
            "id": str(candidate.row["id"]),
            "version": candidate.row["version"],
            "card_type": candidate.card_type,
            "title": candidate.row["title"],
            "score": candidate.score,
            "tokens": cost,
        }
        for (candidate, _), cost in zip(packing.packed, packing.costs, strict=True)
    ]
    omitted = missing + packing.omitted
    context_id = uuid.uuid4()
    await contexts_q.insert_context(
        conn,
        tenant_id=tenant_id,
        context_id=context_id,
        task=request.task,
        token_budget=request.token_budget,
        tokens=tokens,
        tokenizer=tokenizer.NAME,
        format=request.format.value,
        cards=cards,
        omitted=omitted,
        workflow_id=request.workflow_id,
        workflow_type=request.workflow_type,
        ttl_seconds=ttl_seconds,
    )
    recorded: list[str] = []
    if request.workflow_id is not None and request.workflow_type is not None and cards:
        recorded = await usage_q.track_many(
            conn,
            tenant_id=tenant_id,
            card_ids=[candidate.row["id"] for candidate, _ in packing.packed],
            workflow_id=request.workflow_id,
            workflow_type=request.workflow_type,
            session_id=request.session_id,
        )
    return Assembled(context_id, text, tokens, cards, omitted, recorded)


def json_field(value: str) -> Any:
    """A jsonb column as it is stored, embedded into a response without a parse."""
    return orjson.Fragment(value)


async def get(conn: Connection, *, tenant_id: UUID, context_id: UUID) -> asyncpg.Record:
    row = await contexts_q.get_context(conn, tenant_id=tenant_id, context_id=context_id)
    if row is None:
        raise NotFound(f"context {context_id} not found")
    return row
