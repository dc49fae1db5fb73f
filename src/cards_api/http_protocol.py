"""uvicorn's httptools protocol with the limits a public server needs before any ASGI code runs.

uvicorn reads a request's header section for as long and as far as the client likes: one
connection could trickle headers for ever, or stream megabytes of header lines. Both happen
before the application is called, so no middleware can stop them. This subclass adds:

- a deadline for the header section (`CARDS_REQUEST_READ_TIMEOUT`, from the connection's start or
  the first byte of each further request): past it the client gets a **408** and the connection
  is closed;
- a cap on the header section, `MAX_HEADER_BYTES` (request line included) and
  `MAX_HEADER_LINES`: past either the client gets a **431** and the connection is closed, having
  cost at most the cap plus one read of buffer.

The body's own deadline is kept by `middleware.py`, which reads the whole body before a route
runs; a request whose body has all arrived is marked in its scope (`BODY_RECEIVED`), and the
middleware needs no deadline for it. Workers are separate processes that import this class by
name, so the timeout is read from the environment (the same `Settings`) rather than passed in.

Most requests arrive whole in one read. A timer armed and disarmed for each of them (the header
deadline here, the body's in the middleware) was a few percent of a small request's CPU, so a
further request's header deadline is armed only when its header section is still incomplete at
the end of a read, and the body's only when the body is (docs/performance.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from cards_api.limits import MAX_HEADER_BYTES, MAX_HEADER_LINES
from cards_api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE
from cards_api.settings import get_settings

BODY_RECEIVED = "cards_api.body_received"
"""Scope key: True once the request's whole body is in (read it without waiting)."""

_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
_SLUGS = {408: "request-timeout", 431: "headers-too-large"}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the status is kept on the protocol."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.read_timeout = get_settings().request_read_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_started = 0.0
        self._in_headers = True
        self._header_bytes = 0
        self._header_lines = 0
        self._header_size = 0
        self._refusal: tuple[int, str] | None = None

    # --- header deadline -------------------------------------------------------------------

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        deadline = self._header_started + self.read_timeout
        self._header_deadline = self.loop.call_at(deadline, self._header_timed_out)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if self._in_headers and not self.transport.is_closing():
            self._refuse(408, f"the request headers did not arrive within {self.read_timeout:g} s")

    # --- protocol events -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_started = self.loop.time()
        self._arm_header_deadline()  # now: a client may connect and send nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        self._unset_keepalive_if_required()
        if self._in_headers:
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
            else:
                self.logger.info("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_headers and self._header_bytes > MAX_HEADER_BYTES:
            # Still inside the header section, and already past its cap.
            self._refuse(431, f"the request header section exceeds {MAX_HEADER_BYTES} bytes")
        elif self._in_headers and self._header_deadline is None and self._refusal is None:
            self._arm_header_deadline()  # a further request's headers, not all here yet

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # a further request on a kept-alive connection
            self._in_headers = True
            self._header_bytes = 0
            self._header_started = self.loop.time()  # its deadline: see `data_received`
        self._header_lines = 0
        self._header_size = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > MAX_HEADER_LINES:
            self._refusal = (431, f"a request may carry at most {MAX_HEADER_LINES} header lines")
            raise _Refused
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]

    def _count(self, size: int) -> None:
        self._header_size += size
        if self._header_size > MAX_HEADER_BYTES:
            self._refusal = (431, f"the request header section exceeds {MAX_HEADER_BYTES} bytes")
            raise _Refused

    # --- refusing --------------------------------------------------------------------------

    def _refuse(self, status: int, detail: str) -> None:
        """Answer with a problem+json and close: the connection is not worth reading further."""
        self._refusal = (status, detail)
        self._disarm_header_deadline()
        if self.transport.is_closing():
            return
        body = orjson.dumps(
            {
                "type": PROBLEM_TYPE_BASE + _SLUGS[status],
                "title": _REASONS[status],
                "status": status,
                "detail": detail,
            }
        )
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            f"content-type: {PROBLEM_MEDIA_TYPE}\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.logger.info("request refused: %s %s", status, detail)
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()
