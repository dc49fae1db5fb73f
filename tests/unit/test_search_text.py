"""A free-text query becomes only words, quoted, joined by OR: nothing a client types can make
PostgreSQL's query parser fail; a card's embedded text holds its title, tags and every string."""

from __future__ import annotations

import pytest

from cards_api.search.text import MAX_QUERY_WORDS, any_word_query, card_text, words


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What do hospital buyers want?", "'What' | 'do' | 'hospital' | 'buyers' | 'want'"),
        ("(((a <-> b)))", "'a' | 'b'"),
        ("don't", "'don' | 't'"),
        ("snake_case & co2", "'snake' | 'case' | 'co2'"),
        ("Grüße, 東京", "'Grüße' | '東京'"),
    ],
)
def test_queries_become_quoted_words_joined_by_or(query: str, expected: str) -> None:
    assert any_word_query(query) == expected


@pytest.mark.parametrize("query", ["-" * 40, "!" * 300, "'" * 500, "  ", "&|!():*<>"])
def test_a_query_without_a_word_has_no_full_text_query(query: str) -> None:
    assert any_word_query(query) is None


def test_words_are_capped() -> None:
    assert len(words("w " * 500)) == MAX_QUERY_WORDS


def test_card_text_holds_title_tags_and_every_string_of_the_content() -> None:
    text = card_text(
        "Acme", ["onboarding"], {"summary": "Widgets", "nested": {"list": ["a", 1, {"b": "c"}]}}
    )
    assert text.split("\n") == ["Acme", "onboarding", "Widgets", "a", "c"]
