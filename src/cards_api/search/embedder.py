"""Embedders: the offline default (wordllama's `l2_supercat_256`, weights inside its wheel) and
any OpenAI-compatible `/v1/embeddings` server.

Vectors are L2-normalised, so cosine similarity is their dot product (pgvector `<=>`). Neither
embedder blocks the event loop for long: the remote one is an async HTTP call with a deadline;
the local one runs in a thread, except for a little text (a query, a small batch) whose every
word it has already tokenized, a fraction of a millisecond (`LocalEmbedder.embed`). Nothing is
downloaded: the local weights are read from the installed package, and a missing file stops the
start with one clear line.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import structlog

from cards_api import metrics
from cards_api.settings import Settings

log = structlog.get_logger("cards_api.embedder")

Vector = list[float]

LOCAL_MODEL = "l2_supercat_256"
LOCAL_NAME = f"wordllama/{LOCAL_MODEL}"
LOCAL_DIMENSION = 256

# A run of "▁" (spaces, normalised) and the word after it: the pieces the local model's BPE can
# never merge across (see LocalEmbedder).
_SEGMENTS = re.compile("▁+[^▁]*|[^▁]+")
PIECE_CACHE_ENTRIES = 32768
PIECE_MAX_CHARS = 64
# The most `LocalEmbedder.embed` may embed on the event loop, all its words remembered: a
# search's query, or a batch of four cards of ~700 characters (~0.2 ms of look-ups and sums).
# Each text costs ~17 µs more whatever its length (a batch of 100 short cards: 1.7 ms), so the
# number of texts is bounded too: a large batch goes to the thread, where the loop still gets
# the GIL every switch interval.
ON_LOOP_MAX_CHARS = 4096
ON_LOOP_MAX_TEXTS = 8


class EmbedderUnavailable(Exception):
    """The embedder could not answer (remote down, slow, or malformed answer)."""


class Embedder(Protocol):
    name: str
    dimension: int
    local: bool
    """True when embedding is a quick computation here, not a wait on another server."""

    async def embed(self, texts: list[str]) -> list[Vector]: ...

    async def close(self) -> None: ...


def _normalised(vector: Any) -> Vector:
    values = [float(x) for x in vector]
    norm = math.sqrt(sum(x * x for x in values))
    return [x / norm for x in values] if norm > 0 else values


def local_model_files() -> tuple[Path, Path]:
    """The default embedder's weights and tokenizer inside the installed wordllama package;
    a RuntimeError naming the missing file otherwise. Nothing is loaded or downloaded."""
    import wordllama

    package = Path(wordllama.__file__).parent
    weights = package / "weights" / f"{LOCAL_MODEL}.safetensors"
    tokenizer = package / "tokenizers" / "l2_supercat_tokenizer_config.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise RuntimeError(
                f"the embedder's file {path} is missing; reinstall wordllama "
                "(it ships its weights; nothing is downloaded)"
            )
    return weights, tokenizer


def check_embedder(settings: Settings) -> None:
    """What `serve` checks before it starts any worker: the default embedder's files are
    installed (a remote embedder is checked by use: a write never fails for it)."""
    if not settings.embeddings_url:
        local_model_files()


def normalised(text: str) -> str:
    """What the local model's tokenizer makes of `text` before BPE: its normalizer prepends "▁"
    and turns every space into "▁" (in Python: the tokenizer's own takes ~35 µs a card)."""
    return "▁" + text.replace(" ", "▁") if text else ""


class LocalEmbedder:
    """wordllama's static token embeddings, averaged (what `WordLlamaInference.embed` computes),
    with the tokenizing remembered per word.

    The model's tokenizer (Llama 2's BPE, no pre-tokenizer) tokenizes a card's whole text as one
    word: ~1 ms of CPU for a batch of 4 cards of ~100 tokens, most of an embedding's cost. No
    token of its vocabulary holds "▁" (a space) after another character, so no merge can cross
    the start of a run of spaces after a word: the text splits there (`_SEGMENTS`) into pieces
    that tokenize alone exactly as inside the whole, and pieces (words) recur. Checked against
    wordllama's own `embed` on random text (tests/unit/test_embedder.py).
    """

    local = True

    def __init__(self) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        weights, tokenizer_file = local_model_files()
        with safe_open(str(weights), framework="np", device="cpu") as tensors:
            self._matrix: np.ndarray[Any, np.dtype[np.float32]] = tensors.get_tensor(
                "embedding.weight"
            ).astype(np.float32)
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.normalizer = None  # pieces arrive normalised (`normalised`)
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self._pieces: dict[str, tuple[int, ...]] = {}
        self.name = LOCAL_NAME
        self.dimension = int(self._matrix.shape[1])

    def _tokenize(self, piece: str) -> tuple[int, ...]:
        """A piece's ids; a tuple, so a remembered one cannot be changed by its users."""
        return tuple(self._tokenizer.encode(piece, add_special_tokens=False).ids)

    def _piece_ids(self, piece: str) -> tuple[int, ...]:
        """A piece's ids, remembered; past PIECE_CACHE_ENTRIES the oldest eighth is forgotten.
        Threads and the event loop share the memory: each dict operation (and `list` over an
        `islice` of its keys, done in C) is atomic under the GIL, and two threads forgetting at
        once only forget a little more."""
        ids = self._pieces.get(piece)
        if ids is None:
            ids = self._tokenize(piece)
            if len(self._pieces) >= PIECE_CACHE_ENTRIES:
                for oldest in list(itertools.islice(self._pieces, PIECE_CACHE_ENTRIES // 8)):
                    self._pieces.pop(oldest, None)
            self._pieces[piece] = ids
        return ids

    def token_ids(self, text: str) -> list[int]:
        """The model's token ids for `text`, as its tokenizer gives them for the whole text."""
        ids: list[int] = []
        for piece in _SEGMENTS.findall(normalised(text)):
            if len(piece) <= PIECE_MAX_CHARS:
                ids += self._piece_ids(piece)
            else:
                ids += self._tokenize(piece)
        return ids

    def remembered_ids(self, text: str) -> list[int] | None:
        """`token_ids(text)` if every piece of it is remembered, else None: dict look-ups only,
        never the tokenizer."""
        ids: list[int] = []
        for piece in _SEGMENTS.findall(normalised(text)):
            known = self._pieces.get(piece)
            if known is None:
                return None
            ids += known
        return ids

    def embed_now(self, texts: list[str]) -> list[Vector]:
        """Blocking: call from a thread (or a CLI)."""
        return self._pooled([self.token_ids(text) for text in texts])

    def _pooled(self, texts_ids: list[list[int]]) -> list[Vector]:
        """The mean of each text's token rows, normalised (a text without tokens: zeros)."""
        if not texts_ids:
            return []
        pooled = np.zeros((len(texts_ids), self.dimension), dtype=np.float32)
        for row, ids in zip(pooled, texts_ids, strict=True):
            if ids:
                np.sum(self._matrix[ids], axis=0, out=row)
                row /= np.float32(len(ids))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled /= np.where(norms > 0, norms, np.float32(1))
        vectors: list[Vector] = pooled.tolist()
        return vectors

    async def embed(self, texts: list[str]) -> list[Vector]:
        """In a thread, except up to ON_LOOP_MAX_TEXTS texts of at most ON_LOOP_MAX_CHARS in all
        whose words are all remembered (a search's query, a context's task, a small batch's
        cards): those are dict look-ups and a mean of rows, and handing them to a thread cost
        more than it saves. The look-ups are Python and hold the GIL in a thread too, so the
        loop gained no time from the thread, only its wake-ups and the GIL's hand-overs, twice
        a call on a busy loop. Measured on a one-worker server at saturation: hybrid searches
        1,649 → 1,342 µs of the API's CPU a search; batches of 4 cards, docs/performance.md."""
        with metrics.time_embedding(self.name):
            if len(texts) <= ON_LOOP_MAX_TEXTS and sum(map(len, texts)) <= ON_LOOP_MAX_CHARS:
                remembered: list[list[int]] = []
                for text in texts:
                    ids = self.remembered_ids(text)
                    if ids is None:
                        break
                    remembered.append(ids)
                else:
                    return self._pooled(remembered)
            return await asyncio.to_thread(self.embed_now, texts)

    async def close(self) -> None:
        """Nothing to release: the weights go with the process."""


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    url: str
    """Base URL of an OpenAI-compatible API; requests go to `{url}/embeddings`."""
    model: str
    dimension: int
    api_key: str | None
    timeout: float


class RemoteEmbedder:
    """An OpenAI-compatible embeddings endpoint (a local inference server, or a hosted one)."""

    local = False

    def __init__(self, config: RemoteConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.name = f"remote/{config.model}"
        self.dimension = config.dimension
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=config.url.rstrip("/"),
            timeout=config.timeout,
            headers=headers,
            transport=transport,
        )

    async def embed(self, texts: list[str]) -> list[Vector]:
        if not texts:
            return []
        with metrics.time_embedding(self.name):
            try:
                response = await self._http.post(
                    "/embeddings", json={"model": self.config.model, "input": texts}
                )
                response.raise_for_status()
                data = sorted(response.json()["data"], key=lambda item: item["index"])
                vectors = [_normalised(item["embedding"]) for item in data]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                raise EmbedderUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if len(vectors) != len(texts) or any(len(v) != self.dimension for v in vectors):
            raise EmbedderUnavailable(
                f"expected {len(texts)} vectors of {self.dimension} dimensions"
            )
        return vectors

    async def close(self) -> None:
        await self._http.aclose()


def load_embedder(settings: Settings) -> Embedder:
    """The remote embedder when `CARDS_EMBEDDINGS_URL` is set, else the offline default."""
    if settings.embeddings_url:
        assert settings.embeddings_model is not None  # checked by Settings
        assert settings.embeddings_dimension is not None
        key = settings.embeddings_api_key
        return RemoteEmbedder(
            RemoteConfig(
                url=settings.embeddings_url,
                model=settings.embeddings_model,
                dimension=settings.embeddings_dimension,
                api_key=key.get_secret_value() if key is not None else None,
                timeout=settings.embeddings_timeout,
            )
        )
    return LocalEmbedder()
