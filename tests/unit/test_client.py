"""The client retries only what is safe to repeat, honours Retry-After, keys every batch, and
turns every problem+json into its typed exception (httpx's MockTransport plays the API)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import tenacity

import cards_client
from cards_client import (
    AsyncCardsClient,
    CardsClient,
    IdempotencyKeyReused,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
    TransportError,
    ValidationFailed,
)
from cards_client._exceptions import APIError

TENANT = "123e4567-e89b-12d3-a456-426614174000"
CARD_ID = "550e8400-e29b-41d4-a716-446655440001"
STAMP = "2025-10-27T10:30:00Z"


def card_json(**overrides: Any) -> dict[str, Any]:
    return {
        "id": CARD_ID,
        "tenant_id": TENANT,
        "card_type": "company",
        "title": "E2E Test Company",
        "content": {"summary": "widgets"},
        "tags": [],
        "external_ref": None,
        "version": 1,
        "usage_count": 0,
        "last_used_at": None,
        "created_at": STAMP,
        "updated_at": STAMP,
        **overrides,
    }


def problem(status: int, slug: str, trace_id: str = "server-trace", **extra: Any) -> httpx.Response:
    body = {
        "type": f"https://cards-api.dev/problems/{slug}",
        "title": slug,
        "status": status,
        "detail": f"{slug} happened",
        "trace_id": trace_id,
        **extra,
    }
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


class Recorder:
    """A MockTransport handler answering from a script, and remembering every request."""

    def __init__(
        self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]
    ) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        # A fresh copy: a response object must not be sent twice, nor by two kinds of client.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def client(recorder: Recorder, **options: Any) -> CardsClient:
    options = {
        "api_key": "cards_key",
        "tenant_id": TENANT,
        "backoff": 0,
        "max_retries": 3,
        **options,
    }
    return CardsClient("http://cards.test", transport=httpx.MockTransport(recorder), **options)


BATCH_OK = httpx.Response(201, json={"cards": [card_json()], "created": 1, "updated": 0})
NEW = [{"card_type": "company", "title": "E2E Test Company", "content": {"summary": "widgets"}}]


def test_batch_create_always_sends_an_idempotency_key_and_keeps_it_across_retries() -> None:
    recorder = Recorder(
        problem(503, "service-unavailable"),
        httpx.ConnectError("refused"),
        problem(409, "request-in-progress"),
        BATCH_OK,
    )
    result = client(recorder).create_cards(NEW)

    assert result.created == 1
    assert len(recorder.requests) == 4
    keys = {r.headers["Idempotency-Key"] for r in recorder.requests}
    traces = {r.headers["X-Trace-ID"] for r in recorder.requests}
    assert len(keys) == 1
    assert result.idempotency_key in keys
    assert len(traces) == 1
    sent = {"cards": [{**NEW[0], "tags": []}]}
    assert all(json.loads(r.content) == sent for r in recorder.requests)


def test_a_given_idempotency_key_is_used_and_replays_are_reported() -> None:
    replay = httpx.Response(
        201,
        json={"cards": [card_json()], "created": 1, "updated": 0},
        headers={"Idempotent-Replayed": "true"},
    )
    recorder = Recorder(replay)
    result = client(recorder).create_cards(NEW, idempotency_key="onboarding-1")
    assert recorder.requests[0].headers["Idempotency-Key"] == "onboarding-1"
    assert result.replayed is True


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_unavailable_statuses_are_retried(status: int) -> None:
    recorder = Recorder(problem(status, "x"), httpx.Response(200, json=card_json()))
    assert client(recorder).get(CARD_ID).title == "E2E Test Company"
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("status", "slug", "error"),
    [
        (404, "not-found", NotFound),
        (412, "precondition-failed", PreconditionFailed),
        (422, "validation-error", ValidationFailed),
        (422, "idempotency-key-reused", IdempotencyKeyReused),
        (409, "conflict", cards_client.Conflict),
        (401, "unauthorized", cards_client.Unauthorized),
        (403, "forbidden", cards_client.Forbidden),
        (500, "internal-error", cards_client.ServerError),
    ],
)
def test_errors_map_to_exceptions_and_are_not_retried(
    status: int, slug: str, error: type[APIError]
) -> None:
    recorder = Recorder(problem(status, slug, trace_id="trace-from-server"))
    with pytest.raises(error) as caught:
        client(recorder).get(CARD_ID)
    assert len(recorder.requests) == 1
    assert caught.value.status == status
    assert caught.value.trace_id == "trace-from-server"
    assert "trace-from-server" in str(caught.value)


def test_validation_errors_carry_their_fields() -> None:
    errors = [{"loc": ["body", "cards", 0, "title"], "msg": "too long"}]
    recorder = Recorder(problem(422, "validation-error", errors=errors))
    with pytest.raises(ValidationFailed) as caught:
        client(recorder).create_cards(NEW)
    assert caught.value.errors == errors
    assert isinstance(caught.value, cards_client.APIError)


def test_an_error_without_a_problem_body_still_has_the_trace_id() -> None:
    recorder = Recorder(httpx.Response(404, text="not json"))
    with pytest.raises(NotFound) as caught:
        client(recorder).get(CARD_ID)
    assert caught.value.trace_id == recorder.requests[0].headers["X-Trace-ID"]


def test_exhausted_retries_raise_with_the_trace_id() -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(TransportError) as caught:
        client(recorder, max_retries=2).track_usage(CARD_ID, workflow_id="w", workflow_type="t")
    assert len(recorder.requests) == 3
    assert caught.value.trace_id == recorder.requests[0].headers["X-Trace-ID"]

    unavailable = Recorder(problem(503, "service-unavailable"))
    with pytest.raises(ServiceUnavailable):
        client(unavailable, max_retries=1).get(CARD_ID)
    assert len(unavailable.requests) == 2


def test_usage_is_retried_after_an_ambiguous_failure() -> None:
    usage = httpx.Response(
        200,
        json={"card_id": CARD_ID, "usage_count": 1, "last_used_at": STAMP, "event_recorded": True},
    )
    recorder = Recorder(httpx.ReadTimeout("slow"), usage)
    result = client(recorder).track_usage(CARD_ID, workflow_id="w", workflow_type="t")
    assert result.event_recorded is True
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("failure", "retried"),
    [
        (httpx.ConnectError("refused"), True),
        (problem(503, "service-unavailable"), True),
        (httpx.ReadTimeout("slow"), False),
        (httpx.RemoteProtocolError("dropped"), False),
        (problem(502, "bad-gateway"), False),
    ],
)
def test_other_writes_are_retried_only_when_they_surely_did_not_run(
    failure: httpx.Response | Exception, retried: bool
) -> None:
    recorder = Recorder(failure, httpx.Response(200, json=card_json(version=2)))
    api = client(recorder)
    if retried:
        assert api.update(CARD_ID, title="New", if_version=1).version == 2
        assert len(recorder.requests) == 2
    else:
        with pytest.raises((TransportError, APIError)):
            api.update(CARD_ID, title="New", if_version=1)
        assert len(recorder.requests) == 1
    assert recorder.requests[0].headers["If-Match"] == '"1"'


def test_retry_after_is_a_floor_for_the_wait() -> None:
    api = client(Recorder(BATCH_OK))
    error = ServiceUnavailable("busy", status=503, trace_id="t")
    error.retry_after = 7.0
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.set_exception((ServiceUnavailable, error, None))
    assert api._wait(state) >= 7.0


def test_headers_and_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDS_URL", "http://from-env:9999/")
    monkeypatch.setenv("CARDS_API_KEY", "cards_env_key")
    monkeypatch.setenv("CARDS_TENANT_ID", TENANT)
    recorder = Recorder(httpx.Response(200, json=card_json()))
    with CardsClient(transport=httpx.MockTransport(recorder)) as api:
        assert api.base_url == "http://from-env:9999"
        api.get(CARD_ID)
    request = recorder.requests[0]
    assert str(request.url) == f"http://from-env:9999/api/v1/cards/{CARD_ID}"
    assert request.headers["Authorization"] == "Bearer cards_env_key"
    assert request.headers["X-Tenant-ID"] == TENANT
    assert request.headers["User-Agent"].startswith("cards-client/")

    other = str(uuid.uuid4())
    with CardsClient(
        "http://arg", api_key="k2", tenant_id=other, transport=httpx.MockTransport(recorder)
    ) as api:
        api.get(CARD_ID)
    assert recorder.requests[-1].headers["X-Tenant-ID"] == other
    assert recorder.requests[-1].headers["Authorization"] == "Bearer k2"


def test_a_tenant_is_required_for_api_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDS_TENANT_ID", raising=False)
    recorder = Recorder(httpx.Response(200, json={"status": "ok"}))
    api = CardsClient("http://cards.test", transport=httpx.MockTransport(recorder))
    assert api.health() is True
    with pytest.raises(ValueError, match="tenant"):
        api.get(CARD_ID)


def test_list_cards_walks_every_page() -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        following = {None: ("c1", 0), "c1": ("c2", 1), "c2": (None, 2)}[cursor]
        return httpx.Response(
            200,
            json={"cards": [card_json(title=f"page {following[1]}")], "next_cursor": following[0]},
        )

    recorder = Recorder(pages)
    titles = [c.title for c in client(recorder).list_cards(card_type="voice", page_size=1)]
    assert titles == ["page 0", "page 1", "page 2"]
    assert recorder.requests[0].url.params["card_type"] == "voice"
    assert "tag" not in recorder.requests[0].url.params


def test_upsert_needs_external_refs() -> None:
    with pytest.raises(ValueError, match="external_ref"):
        client(Recorder(BATCH_OK)).upsert(NEW)


def test_ready_is_false_when_the_server_is_not_ready() -> None:
    recorder = Recorder(problem(503, "service-unavailable"))
    assert client(recorder).ready() is False
    assert len(recorder.requests) == 1


async def test_the_async_client_shares_the_policy() -> None:
    recorder = Recorder(problem(503, "service-unavailable"), httpx.ConnectError("x"), BATCH_OK)
    api = AsyncCardsClient(
        "http://cards.test",
        api_key="k",
        tenant_id=TENANT,
        backoff=0,
        transport=httpx.MockTransport(recorder),
    )
    async with api:
        result = await api.create_cards(NEW)
        assert result.cards[0].title == "E2E Test Company"
        assert len({r.headers["Idempotency-Key"] for r in recorder.requests}) == 1
        assert len(recorder.requests) == 3
        missing = Recorder(problem(404, "not-found", trace_id="tr"))
        api._http._transport = httpx.MockTransport(missing)
        with pytest.raises(NotFound) as caught:
            await api.get(CARD_ID)
        assert caught.value.trace_id == "tr"


def test_public_names_are_sorted_and_importable() -> None:
    assert cards_client.__all__ == sorted(cards_client.__all__)
    for name in cards_client.__all__:
        assert getattr(cards_client, name) is not None
