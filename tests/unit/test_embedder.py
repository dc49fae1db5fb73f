"""The default embedder runs offline from the weights inside its package (and refuses to start
without them); a remote one turns any failure into EmbedderUnavailable, never a crash."""

from __future__ import annotations

import functools
import math
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cards_api.search.embedder import (
    _SEGMENTS,
    ON_LOOP_MAX_CHARS,
    ON_LOOP_MAX_TEXTS,
    PIECE_MAX_CHARS,
    EmbedderUnavailable,
    LocalEmbedder,
    RemoteConfig,
    RemoteEmbedder,
    local_model_files,
    normalised,
)


def test_the_local_embedder_gives_unit_vectors_that_rank_by_meaning() -> None:
    embedder = LocalEmbedder()
    assert embedder.name == "wordllama/l2_supercat_256"
    assert embedder.dimension == 256
    query, near, far = embedder.embed_now(
        ["solar energy", "photovoltaic panels on roofs", "sourdough bread recipe"]
    )
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-3) for v in (query, near, far))

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(query, near) > cosine(query, far)


@functools.cache
def _embedder() -> LocalEmbedder:
    return LocalEmbedder()


@functools.cache
def _wordllama() -> Any:
    """wordllama's own inference on the same files: what the local embedder must equal."""
    from safetensors import safe_open
    from tokenizers import Tokenizer
    from wordllama.inference import WordLlamaInference

    weights, tokenizer = local_model_files()
    with safe_open(str(weights), framework="np", device="cpu") as tensors:
        matrix = tensors.get_tensor("embedding.weight")
    return WordLlamaInference(matrix, Tokenizer.from_file(str(tokenizer)))


@functools.cache
def _whole_text_tokenizer() -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(local_model_files()[1]))


# Words that recur (as card text does, so the remembered pieces are used), runs of spaces,
# newlines, the "▁" character itself, punctuation and text outside the vocabulary.
_texts = st.lists(
    st.one_of(
        st.sampled_from(["brand", "voice", "pricing", "B2B", "naïve", "▁", "  ", "\n", "-", "😀"]),
        st.text(min_size=1, max_size=12),
    ),
    min_size=1,
    max_size=40,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(_texts)
def test_local_tokens_are_the_tokenizers_own_for_the_whole_text(text: str) -> None:
    whole: Any = _whole_text_tokenizer()
    assert normalised(text) == whole.normalizer.normalize_str(text)
    ids = whole.encode(text, add_special_tokens=False).ids
    assert _embedder().token_ids(text) == ids
    # Once tokenized, the same ids from memory alone (what the event loop may use), unless a
    # piece was too long to be remembered.
    remembered = _embedder().remembered_ids(text)
    long_piece = any(len(piece) > PIECE_MAX_CHARS for piece in _SEGMENTS.findall(normalised(text)))
    assert remembered == (None if long_piece else ids)


async def test_only_a_little_text_of_remembered_words_is_embedded_on_the_event_loop() -> None:
    embedder = LocalEmbedder()
    threads: list[int] = []
    pooled = embedder._pooled

    def recorded(texts_ids: list[list[int]]) -> list[list[float]]:
        threads.append(threading.get_ident())
        return pooled(texts_ids)

    embedder._pooled = recorded  # type: ignore[method-assign]
    loop = threading.get_ident()
    query = "solar panels for a small bakery"
    card = "Bakery: " + "ovens run on solar panels all day " * 20  # ~700 characters
    first = await embedder.embed([query])  # words not yet tokenized: the tokenizer, in a thread
    again = await embedder.embed([query])  # remembered: on the loop
    assert first == again == embedder.embed_now([query])
    await embedder.embed([card])
    threads.clear()
    await embedder.embed([query])
    batch = await embedder.embed([card, query, card, card])  # a batch of four, all remembered
    await embedder.embed([card, query + " croissants"])  # one new word: the whole batch waits
    await embedder.embed(["solar " * (ON_LOOP_MAX_CHARS // 6 + 1)])  # too long, though known
    await embedder.embed([card] * (ON_LOOP_MAX_CHARS // len(card) + 1))  # too much in all
    await embedder.embed([query] * (ON_LOOP_MAX_TEXTS + 1))  # short, but too many texts
    assert threads[:2] == [loop, loop]
    assert len(threads) == 6
    assert all(thread != loop for thread in threads[2:]), threads
    assert batch == embedder.embed_now([card, query, card, card])


@settings(max_examples=100, deadline=None)
@given(st.lists(_texts, min_size=1, max_size=6))
def test_local_vectors_are_wordllamas_own(texts: list[str]) -> None:
    ours = np.array(_embedder().embed_now(texts))
    theirs = _wordllama().embed(texts, norm=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_missing_weights_stop_the_start_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import wordllama

    monkeypatch.setattr(wordllama, "__file__", str(tmp_path / "__init__.py"))
    with pytest.raises(RuntimeError, match="missing; reinstall wordllama"):
        LocalEmbedder()


def _remote(handler: httpx.MockTransport) -> RemoteEmbedder:
    config = RemoteConfig("http://embed.test/v1", "m", 2, None, 1.0)
    return RemoteEmbedder(config, transport=handler)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"data": [{"index": 0, "embedding": [1.0, 0.0, 0.0]}]}),
        httpx.Response(200, json={"data": []}),
        httpx.Response(200, json={"unexpected": True}),
    ],
)
async def test_a_bad_remote_answer_is_embedder_unavailable(answer: httpx.Response) -> None:
    embedder = _remote(httpx.MockTransport(lambda request: answer))
    with pytest.raises(EmbedderUnavailable):
        await embedder.embed(["x"])
    await embedder.close()


async def test_remote_vectors_are_normalised_and_kept_in_order() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        data = [{"index": 1, "embedding": [0.0, 2.0]}, {"index": 0, "embedding": [3.0, 4.0]}]
        return httpx.Response(200, json={"data": data})

    embedder = _remote(httpx.MockTransport(answer))
    assert await embedder.embed(["a", "b"]) == [[0.6, 0.8], [0.0, 1.0]]
    await embedder.close()
