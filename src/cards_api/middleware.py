"""The one ASGI middleware every request passes: trace id, body limit, request log and metrics,
last-resort error handling.

It is written as plain ASGI (not Starlette's BaseHTTPMiddleware) because it sits on every
request: no extra task, no body buffering, and the request's contextvars stay visible to it.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cards_api import metrics
from cards_api.errors import PayloadTooLarge, internal_error_response, problem_response
from cards_api.limits import MAX_BODY_BYTES
from cards_api.tracing import choose_trace_id, current_trace_id

log = structlog.get_logger("cards_api.request")


_WANTED = (b"x-trace-id", b"traceparent", b"content-length")


def _headers(scope: Scope) -> dict[bytes, str]:
    """The few headers this middleware reads, in one pass over the request's headers."""
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key in _WANTED and key not in found:
            found[key] = value.decode("latin-1")
    return found


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body exceeds the limit of {MAX_BODY_BYTES} bytes")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = _headers(scope)
        trace_id = choose_trace_id(headers.get(b"x-trace-id"), headers.get(b"traceparent"))
        current_trace_id.set(trace_id)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(trace_id=trace_id)
        trace_header = (b"x-trace-id", trace_id.encode("ascii"))
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_trace(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), trace_header]
            await send(message)

        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                # Refused on the header alone: the body is never read.
                await problem_response(_too_large())(scope, receive, send_with_trace)
                return
            await self.app(scope, _limited(receive), send_with_trace)
        except Exception as exc:
            log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
            if not response_started:
                await internal_error_response()(scope, receive, send_with_trace)
        finally:
            elapsed = time.perf_counter() - started
            route: str | None = getattr(scope.get("route"), "path", None)
            state: dict[str, Any] = scope.get("state") or {}
            metrics.observe_request(scope["method"], route, status, elapsed)
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 3),
                tenant_id=state.get("tenant_id"),
            )


def _limited(receive: Receive) -> Receive:
    """Count body bytes as they arrive, for bodies sent without a Content-Length."""
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise _too_large()
        return message

    return receive_limited
