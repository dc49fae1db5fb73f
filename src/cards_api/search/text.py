"""Text in and out of search: what of a card is embedded, and a free-text query as a full-text
query PostgreSQL can never fail to parse."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

_WORD = re.compile(r"[^\W_]+")
MAX_QUERY_WORDS = 64


def words(query: str) -> list[str]:
    """The words of a free-text query: letters and digits only, punctuation and every query
    operator dropped, at most MAX_QUERY_WORDS of them."""
    return _WORD.findall(query)[:MAX_QUERY_WORDS]


def any_word_query(query: str) -> str | None:
    """A `to_tsquery` text matching any of the query's words (stop words are dropped and words
    stemmed by PostgreSQL's `english` configuration); None when there is no word to search."""
    found = words(query)
    # Quoted, a word that PostgreSQL's parser would split (some scripts, mixed digits) becomes
    # a phrase instead of a syntax error; the words hold no quotes to escape.
    return " | ".join(f"'{word}'" for word in found) if found else None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def card_text(title: str, tags: Sequence[str], content: dict[str, Any]) -> str:
    """What a card's embedding is computed from: its title, tags and every string of its content
    (the same strings the full-text index reads, plus the tags)."""
    parts = [title, *tags, *_strings(content)]
    return "\n".join(part for part in parts if part)
