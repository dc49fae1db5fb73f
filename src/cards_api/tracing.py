"""Trace ids: which one a request carries, and where the current one is kept.

A caller's `X-Trace-ID` wins when it is printable ASCII of at most 128 characters; otherwise
the trace id of a valid W3C `traceparent` is used, so traces started by an instrumented gateway
line up with our logs; otherwise a fresh id is made. A bad `X-Trace-ID` is replaced rather than
rejected: a trace id exists to help debugging and must never fail a request.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

from cards_api.limits import MAX_TRACE_ID_CHARS

_VISIBLE_ASCII = re.compile(rf"^[\x21-\x7e]{{1,{MAX_TRACE_ID_CHARS}}}$")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16

current_trace_id: ContextVar[str] = ContextVar("current_trace_id", default="")


def new_trace_id() -> str:
    return secrets.token_hex(16)  # 32 hex digits, as a W3C trace id (a quarter of uuid4's cost)


def trace_id_from_traceparent(value: str | None) -> str | None:
    """The trace id of a valid W3C `traceparent` header, or None."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    return trace_id


def choose_trace_id(x_trace_id: str | None, traceparent: str | None) -> str:
    if x_trace_id is not None and _VISIBLE_ASCII.match(x_trace_id):
        return x_trace_id
    return trace_id_from_traceparent(traceparent) or new_trace_id()
