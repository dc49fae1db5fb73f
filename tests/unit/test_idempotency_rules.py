"""An Idempotency-Key fingerprint is over the canonical request (method, path, JSON with sorted
keys and no spacing): formatting never makes a 422, a different request always does; keys are
1-255 visible ASCII characters."""

from __future__ import annotations

import pytest

from cards_api import idempotency
from cards_api.errors import BadRequest


def test_fingerprint_ignores_formatting_and_key_order() -> None:
    a = idempotency.fingerprint("POST", "/api/v1/cards/batch", b'{"a": 1, "b": [1, 2]}')
    b = idempotency.fingerprint("post", "/api/v1/cards/batch", b'{"b":[1,2],"a":1}')
    assert a == b


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/cards/batch", b'{"a": 2, "b": [1, 2]}'),
        ("POST", "/api/v1/cards/batch", b'{"a": 1, "b": [2, 1]}'),
        ("PUT", "/api/v1/cards/batch", b'{"a": 1, "b": [1, 2]}'),
        ("POST", "/api/v1/cards/retrieve", b'{"a": 1, "b": [1, 2]}'),
    ],
)
def test_fingerprint_tells_requests_apart(method: str, path: str, body: bytes) -> None:
    base = idempotency.fingerprint("POST", "/api/v1/cards/batch", b'{"a": 1, "b": [1, 2]}')
    assert idempotency.fingerprint(method, path, body) != base


def test_key_rules() -> None:
    assert idempotency.parse_key(None) is None
    assert idempotency.parse_key("k" * 255) == "k" * 255
    for bad in ("", "k" * 256, "with space", "tab\t"):
        with pytest.raises(BadRequest):
            idempotency.parse_key(bad)
