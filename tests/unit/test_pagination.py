"""Cursors are opaque but exact: they round-trip the sort key, and anything that does not decode
to one is a 422 naming the `cursor` parameter, never a 500."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from cards_api import pagination
from cards_api.errors import ValidationFailed


def test_time_id_cursor_round_trips() -> None:
    stamp = datetime(2025, 10, 27, 10, 30, 0, 123456, tzinfo=UTC)
    item = uuid.uuid4()
    cursor = pagination.encode_time_id(stamp, item)
    assert cursor.isascii()
    assert "=" not in cursor
    assert pagination.decode_time_id(cursor) == (stamp, item)


def test_version_cursor_round_trips() -> None:
    assert pagination.decode_version(pagination.encode_version(7)) == 7


@pytest.mark.parametrize(
    "cursor", ["", "###", "e30", "WzFd", "WyJ4IiwieSJd", "WyIyMDI1LTAxLTAxIiwieCJd"]
)
def test_bad_cursors_are_422_naming_the_parameter(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        pagination.decode_time_id(cursor)
    assert caught.value.errors == [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]


@pytest.mark.parametrize("version", [0, -1, 2**31, True])
def test_out_of_range_versions_are_refused(version: int) -> None:
    cursor = pagination._encode([version])
    with pytest.raises(ValidationFailed):
        pagination.decode_version(cursor)
