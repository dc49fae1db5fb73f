"""An OpenAI-compatible embeddings server as the embedder: used when configured, never waited on
with a database connection held; when it fails or is slow, writes still succeed, cards are found
by text, semantic search answers 503, and the background worker embeds them once it answers
again — also after a restart (the cards table is the durable outbox).

The server is a small real HTTP server on localhost, made here: it embeds by hashing words into
a few buckets, so texts that share words are close.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from cards_api.settings import Settings
from tests.support import Tenant, card, client_for

DIMENSION = 8


def fake_vector(text: str) -> list[float]:
    vector = [0.0] * DIMENSION
    for word in text.lower().split():
        vector[hashlib.sha256(word.encode()).digest()[0] % DIMENSION] += 1.0
    return vector


@dataclass
class Behaviour:
    mode: str = "ok"  # ok | error | slow
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def fake_server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            behaviour.requests.append(
                {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
            )
            if behaviour.mode == "slow":
                time.sleep(1.5)
            if behaviour.mode == "error":
                self.send_response(500)
                self.end_headers()
                return
            data = [
                {"object": "embedding", "index": i, "embedding": fake_vector(text)}
                for i, text in enumerate(body["input"])
            ]
            payload = json.dumps({"object": "list", "data": data, "model": body["model"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", behaviour
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def remote_settings(settings: Settings, fake_server: tuple[str, Behaviour]) -> Settings:
    url, _ = fake_server
    return Settings(
        database_url=settings.database_url,
        log_level="WARNING",
        rate_limit=0,
        auth_failure_rate=0,
        embeddings_url=url,
        embeddings_model="fake-8",
        embeddings_dimension=DIMENSION,
        embeddings_api_key="sk-test",
        embeddings_timeout=0.5,
    )


@pytest.fixture
async def remote(remote_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(remote_settings) as http:
        yield http


def _fast_worker(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    app.state.embedding_worker.idle_seconds = 0.1
    app.state.embedding_worker.retry_seconds = 0.1


async def _pending(client: httpx.AsyncClient, tenant: Tenant) -> int:
    info = (await client.get("/api/v1/search/info", headers=tenant.headers())).json()
    pending: int = info["pending"]
    return pending


async def _wait_until_embedded(client: httpx.AsyncClient, tenant: Tenant) -> None:
    deadline = time.monotonic() + 15
    while await _pending(client, tenant):
        assert time.monotonic() < deadline, "the worker never embedded the pending cards"


CARDS = [
    card("product", "Solar panels", content={"text": "solar panels on the roof"}),
    card("voice", "Calm voice", content={"text": "calm and plain words"}),
]


async def test_the_remote_embedder_is_used_for_cards_and_queries(
    remote: httpx.AsyncClient, tenant: Tenant, fake_server: tuple[str, Behaviour]
) -> None:
    _, behaviour = fake_server
    created = await remote.post(
        "/api/v1/cards/batch", json={"cards": CARDS}, headers=tenant.headers()
    )
    assert created.status_code == 201
    info = (await remote.get("/api/v1/search/info", headers=tenant.headers())).json()
    assert info == {
        "embedder": "remote/fake-8",
        "dimension": 8,
        "pending": 0,
        "tokenizer": "cl100k_base",
    }
    found = await remote.post(
        "/api/v1/cards/retrieve",
        json={"query": "panels on the roof", "mode": "semantic", "limit": 1},
        headers=tenant.headers(),
    )
    assert [c["title"] for c in found.json()["cards"]] == ["Solar panels"]
    assert behaviour.requests[0]["path"] == "/v1/embeddings"
    assert behaviour.requests[0]["body"]["model"] == "fake-8"
    assert behaviour.requests[0]["auth"] == "Bearer sk-test"


@pytest.mark.parametrize("failure", ["error", "slow"])
async def test_when_the_embedder_fails_writes_succeed_and_cards_are_embedded_later(
    remote: httpx.AsyncClient,
    tenant: Tenant,
    fake_server: tuple[str, Behaviour],
    failure: str,
) -> None:
    _, behaviour = fake_server
    _fast_worker(remote)
    behaviour.mode = failure
    started = time.monotonic()
    created = await remote.post(
        "/api/v1/cards/batch", json={"cards": CARDS}, headers=tenant.headers()
    )
    assert created.status_code == 201
    assert time.monotonic() - started < 1.4  # the embedding timeout, not the server's delay
    assert await _pending(remote, tenant) == 2
    by_text = await remote.post(
        "/api/v1/cards/retrieve", json={"query": "solar roof"}, headers=tenant.headers()
    )
    assert [c["title"] for c in by_text.json()["cards"]] == ["Solar panels"]  # hybrid → text
    semantic = await remote.post(
        "/api/v1/cards/retrieve",
        json={"query": "solar roof", "mode": "semantic"},
        headers=tenant.headers(),
    )
    assert semantic.status_code == 503
    assert semantic.headers["content-type"] == "application/problem+json"
    behaviour.mode = "ok"
    await _wait_until_embedded(remote, tenant)


async def test_pending_embeddings_survive_a_restart(
    remote_settings: Settings, tenant: Tenant, fake_server: tuple[str, Behaviour]
) -> None:
    _, behaviour = fake_server
    behaviour.mode = "error"
    async with client_for(remote_settings) as first:
        created = await first.post(
            "/api/v1/cards/batch", json={"cards": CARDS}, headers=tenant.headers()
        )
        assert created.status_code == 201
        assert await _pending(first, tenant) == 2
    behaviour.mode = "ok"
    async with client_for(remote_settings) as second:  # a new process: nothing in memory
        _fast_worker(second)
        second._transport.app.state.embedding_worker.kick()  # type: ignore[attr-defined]
        await _wait_until_embedded(second, tenant)


def test_a_remote_embedder_needs_its_model_and_dimension() -> None:
    from cards_api.settings import SettingsError, load_settings

    with pytest.MonkeyPatch.context() as env:
        env.setenv("CARDS_EMBEDDINGS_URL", "http://127.0.0.1:1/v1")
        with pytest.raises(SettingsError, match="CARDS_EMBEDDINGS_MODEL"):
            load_settings()
