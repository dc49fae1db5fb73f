"""Packing never exceeds the budget, counts exactly, and never cuts a card: for any cards, any
budget and either format, `tokens` is the cl100k_base count of `text`, every packed card is in the
text whole, every other card is omitted, and the JSON format parses."""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from cards_api.domain.contexts import Candidate, Packing
from cards_api.domain.schemas import CardType, ContextFormat
from cards_api.search import tokenizer

text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=80,
)
contents = st.dictionaries(
    st.text(min_size=1, max_size=10),
    st.one_of(text, st.integers(-(2**53), 2**53), st.lists(text, max_size=3)),
    max_size=4,
)
cards = st.lists(
    st.tuples(st.sampled_from([t.value for t in CardType]), text, contents), min_size=1, max_size=12
)


def _candidate(card_type: str, title: str, content: dict[str, Any]) -> Candidate:
    row = {
        "id": uuid.uuid4(),
        "version": 1,
        "card_type": card_type,
        "title": title,
        "content": orjson.dumps(content).decode(),
    }
    return Candidate(row, 0.5)


@settings(max_examples=150, deadline=None)
@given(
    cards=cards,
    budget=st.integers(min_value=50, max_value=1500),
    fmt=st.sampled_from(list(ContextFormat)),
    limit=st.integers(min_value=0, max_value=3),
)
def test_packing_is_exact_whole_and_within_budget(
    cards: list[tuple[str, str, dict[str, Any]]], budget: int, fmt: ContextFormat, limit: int
) -> None:
    packing = Packing(budget=budget, fmt=fmt, per_type_limit={"insight": limit})
    candidates = [_candidate(*card) for card in cards]
    for candidate in candidates:
        packing.offer(candidate)
    result, tokens = packing.text()
    assert tokens == tokenizer.count(result) <= budget
    packed_ids = {c.row["id"] for c, _ in packing.packed}
    omitted_ids = {o["id"] for o in packing.omitted}
    assert len(packed_ids) + len(omitted_ids) == len(candidates)
    for _, block in packing.packed:
        assert block in result  # whole
    assert sum(1 for c, _ in packing.packed if c.card_type == "insight") <= limit
    if fmt is ContextFormat.JSON:
        items = json.loads(result) if result else []
        assert [i["title"] for i in items] == [c.row["title"] for c, _ in packing.packed]


def test_a_changed_card_is_rendered_and_counted_anew() -> None:
    """Blocks are remembered by the card's own text: the same card twice gives the same block,
    a new version of it never the old one."""
    before = _candidate("insight", "Pricing", {"text": "Prices rise 10% in March."})
    after = _candidate("insight", "Pricing", {"text": "Prices rise 12% in April, then hold."})
    texts = []
    for candidate in (before, before, after):
        packing = Packing(budget=500, fmt=ContextFormat.MARKDOWN, per_type_limit={})
        packing.offer(candidate)
        result, tokens = packing.text()
        assert tokens == tokenizer.count(result)
        texts.append(result)
    assert texts[0] == texts[1] != texts[2]
    assert "12% in April" in texts[2]
    assert "10% in March" not in texts[2]
