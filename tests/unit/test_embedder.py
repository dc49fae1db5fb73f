"""The default embedder runs offline from the weights inside its package (and refuses to start
without them); a remote one turns any failure into EmbedderUnavailable, never a crash."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from cards_api.search.embedder import (
    EmbedderUnavailable,
    LocalEmbedder,
    RemoteConfig,
    RemoteEmbedder,
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
