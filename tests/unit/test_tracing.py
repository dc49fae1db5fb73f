"""Every request gets a trace id: a valid `X-Trace-ID` is kept, an invalid one replaced, a W3C
`traceparent` used when there is no `X-Trace-ID`."""

from __future__ import annotations

import pytest

from cards_api.tracing import choose_trace_id, trace_id_from_traceparent


def test_a_visible_ascii_trace_id_is_kept() -> None:
    assert choose_trace_id("abc-123:/x", None) == "abc-123:/x"
    assert choose_trace_id("x" * 128, None) == "x" * 128


@pytest.mark.parametrize("bad", ["", "x" * 129, "a b", "tab\t", "\x7f", "ü"])
def test_an_invalid_trace_id_is_replaced(bad: str) -> None:
    chosen = choose_trace_id(bad, None)
    assert chosen != bad
    assert len(chosen) == 32


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_traceparent(header: str | None, expected: str | None) -> None:
    assert trace_id_from_traceparent(header) == expected
