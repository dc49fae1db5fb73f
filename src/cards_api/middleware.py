"""The one ASGI middleware every request passes: trace id, the whole body read under a deadline
and a size limit, request log and metrics, last-resort error handling.

The body is read here, completely, before any route runs: a route (and so a pool connection)
never waits on a slow client. A body that does not arrive within `CARDS_REQUEST_READ_TIMEOUT`
seconds gets a 408 and the connection is closed; a client that hangs up mid-body is logged at
INFO and counted in `cards_api_client_disconnects_total`, not as a server error.

It is written as plain ASGI (not Starlette's BaseHTTPMiddleware) because it sits on every
request: no extra task, no body buffering, and the request's contextvars stay visible to it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cards_api import metrics
from cards_api.errors import PayloadTooLarge, RequestTimeout
from cards_api.http_protocol import BODY_RECEIVED
from cards_api.limits import MAX_BODY_BYTES
from cards_api.problems import internal_error_response, problem_response
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


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, read_timeout: float) -> None:
        self.app = app
        self.read_timeout = read_timeout

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
        disconnected = False

        async def send_with_trace(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), trace_header]
            await send(message)

        try:
            declared = headers.get(b"content-length")
            if _declared_size(declared) > MAX_BODY_BYTES:
                # Refused on the header alone: the body is never read.
                await problem_response(_too_large())(scope, receive, send_with_trace)
                return
            try:
                if scope.get(BODY_RECEIVED):  # all here: nothing to wait for, no deadline to arm
                    body_receive = await _read_body(receive)
                else:
                    async with asyncio.timeout(self.read_timeout):
                        body_receive = await _read_body(receive)
            except TimeoutError:
                problem = RequestTimeout(
                    f"the request body did not arrive within {self.read_timeout:g} s",
                    headers={"Connection": "close"},
                )
                await problem_response(problem)(scope, receive, send_with_trace)
                return
            await self.app(scope, body_receive, send_with_trace)
        except ClientDisconnected:
            disconnected = True
        except PayloadTooLarge as exc:
            await problem_response(exc)(scope, receive, send_with_trace)
        except Exception as exc:
            log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
            if not response_started:
                await internal_error_response()(scope, receive, send_with_trace)
        finally:
            elapsed = time.perf_counter() - started
            route: str | None = getattr(scope.get("route"), "path", None)
            state: dict[str, Any] = scope.get("state") or {}
            if disconnected:
                metrics.record_client_disconnect()
                log.info(
                    "client_disconnected",
                    method=scope["method"],
                    path=scope["path"],
                    detail="the client closed the connection before its request body was complete",
                )
            else:
                metrics.observe_request(scope["method"], route, status, elapsed)
                log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 3),
                    tenant_id=state.get("tenant_id"),
                )


def _declared_size(value: str | None) -> int:
    """Content-Length as a number; 0 when absent or not plain ASCII digits."""
    if value is None or not (value.isascii() and value.isdigit()):
        return 0
    return int(value)


async def _read_body(receive: Receive) -> Receive:
    """Read the whole body, at most MAX_BODY_BYTES, and return a `receive` that hands it to
    the application in one message."""
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        if message["type"] != "http.request":  # pragma: no cover - not sent by servers
            continue
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            raise _too_large()
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: only a disconnect can come

    return replay
