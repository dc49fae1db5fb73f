"""Hostile and slow clients over raw sockets against the real server: nothing one client sends
holds a shared resource (pool connections, memory) or makes a server error.

- slow bodies never hold pool connections: other tenants and `/ready` keep answering;
- headers and bodies that do not arrive within `CARDS_REQUEST_READ_TIMEOUT` get a 408, then
  the connection is closed;
- the header section is capped in bytes and in lines (431, then closed);
- a client that hangs up mid-body is an INFO log line and a counter, not an error or a 5xx.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from cards_api.limits import MAX_HEADER_BYTES, MAX_HEADER_LINES
from tests.e2e.conftest import Server, clean_env, start_server, wait_until
from tests.support import Tenant, issue_tenant_sync

pytestmark = pytest.mark.e2e

READ_TIMEOUT_S = 2.0
POOL_SIZE = 4


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = clean_env(
        DATABASE_URL=database_url,
        CARDS_RATE_LIMIT="0",
        CARDS_REQUEST_READ_TIMEOUT=str(READ_TIMEOUT_S),
        CARDS_POOL_MAX_SIZE=str(POOL_SIZE),
        CARDS_LOG_LEVEL="INFO",
    )
    server = start_server(tmp_path_factory.mktemp("hostile") / "logs", env)
    try:
        yield server
    finally:
        server.stop()


def _connect(server: Server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_all(sock: socket.socket, limit: int = 65536) -> bytes:
    """Everything the server sends until it closes the connection (or `limit` bytes)."""
    data = b""
    while len(data) < limit:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _wait_parked(server: Server, count: int) -> None:
    """Wait until the server holds `count` client connections (the slow ones are all in)."""
    port = int(server.base_url.rsplit(":", 1)[1])

    def held() -> int:
        return sum(
            1
            for c in psutil.Process(server.process.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )

    wait_until(lambda: held() >= count, f"{count} connections held by the server")


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _slow_retrieve_head(tenant: Tenant, server: Server, length: int) -> bytes:
    host = server.base_url.removeprefix("http://")
    return (
        f"POST /api/v1/cards/retrieve HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {tenant.key}\r\nX-Tenant-ID: {tenant.id}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_slow_bodies_of_one_tenant_do_not_starve_another(server: Server, database_url: str) -> None:
    attacker, victim = issue_tenant_sync(database_url), issue_tenant_sync(database_url)
    body = b'{"card_types": ["company"]}'
    sockets = []
    try:
        for _ in range(30):  # far more than the pool's connections
            sock = _connect(server)
            sock.sendall(_slow_retrieve_head(attacker, server, len(body)) + body[:1])
            sockets.append(sock)
        _wait_parked(server, 30)
        with httpx.Client(base_url=server.base_url, timeout=5) as client:
            started = time.monotonic()
            listed = client.get("/api/v1/cards", headers=victim.headers())
            elapsed = time.monotonic() - started
            assert listed.status_code == 200
            assert elapsed < 1.0, f"another tenant waited {elapsed:.2f} s"
            assert client.get("/ready").status_code == 200
        # Past the read deadline each slow request gets a 408 and its connection is closed.
        for sock in sockets[:3]:
            sock.settimeout(READ_TIMEOUT_S + 5)
            response = _read_all(sock)
            assert _status(response) == 408
            assert b"connection: close" in response.lower()
            assert b"application/problem+json" in response
    finally:
        for sock in sockets:
            sock.close()


def _headers_never_finish(sock: socket.socket) -> None:
    """Send the start of a header section and no more: a 408 within the read timeout."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    sock.settimeout(READ_TIMEOUT_S + 5)
    started = time.monotonic()
    response = _read_all(sock)
    assert _status(response) == 408
    assert time.monotonic() - started < READ_TIMEOUT_S + 3


def test_headers_that_never_finish_get_a_408_and_are_closed(server: Server) -> None:
    with _connect(server) as sock:
        _headers_never_finish(sock)


def test_a_later_request_whose_headers_never_finish_gets_a_408(server: Server) -> None:
    """On a kept-alive connection the next request's header deadline is armed only once its
    headers are seen not to have arrived whole (`http_protocol.py`): it must still be armed."""
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(4096)
        assert _status(first) == 200
        _headers_never_finish(sock)


def test_a_body_sent_with_its_headers_is_read_at_once(server: Server, database_url: str) -> None:
    """The usual request, whole in one write, is answered (no deadline needed to read it)."""
    tenant = issue_tenant_sync(database_url)
    body = json.dumps({"card_types": ["company"]}).encode()
    with _connect(server) as sock:
        sock.sendall(_slow_retrieve_head(tenant, server, len(body)) + body)
        response = sock.recv(65536)
    assert _status(response) == 200


def test_an_idle_connection_is_closed_after_the_read_timeout(server: Server) -> None:
    with _connect(server) as sock:
        sock.settimeout(READ_TIMEOUT_S + 5)
        response = _read_all(sock)
    assert response == b"" or _status(response) == 408


def test_a_header_flood_is_refused_after_the_cap(server: Server) -> None:
    line = b"X-Flood: " + b"a" * 1000 + b"\r\n"
    sent = 0
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        try:
            while sent < 32 * 1024 * 1024:
                sock.sendall(line)
                sent += len(line)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = _read_all(sock)
    # The server stopped reading soon after the cap: the rest could not be sent.
    assert sent < 4 * 1024 * 1024, f"the server kept reading {sent} bytes of headers"
    if response:  # the 431 may be lost to the reset that the unread data causes
        assert _status(response) == 431


def test_too_many_header_lines_is_a_431(server: Server) -> None:
    lines = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADER_LINES + 1))
    assert len(lines) < MAX_HEADER_BYTES  # refused for the count, not the size
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
        response = _read_all(sock)
    assert _status(response) == 431
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["status"] == 431


def test_a_large_header_section_is_a_431(server: Server) -> None:
    big = b"X-Big: " + b"b" * MAX_HEADER_BYTES + b"\r\n"
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
        response = _read_all(sock)
    assert _status(response) == 431


def test_headers_within_the_caps_are_served(server: Server) -> None:
    lines = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADER_LINES - 2))
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + lines + b"Connection: close\r\n\r\n")
        response = _read_all(sock)
    assert _status(response) == 200


def _metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _server_errors(server: Server) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cards_api_requests_total") and 'status="5' in line
    )


def test_a_client_hanging_up_mid_body_is_logged_as_a_disconnect(
    server: Server, database_url: str
) -> None:
    tenant = issue_tenant_sync(database_url)
    before = _metric(server, "cards_api_client_disconnects_total")
    errors_before = _server_errors(server)
    with _connect(server) as sock:
        sock.sendall(_slow_retrieve_head(tenant, server, 1000) + b'{"card_types": [')
    wait_until(
        lambda: _metric(server, "cards_api_client_disconnects_total") >= before + 1,
        "the disconnect to be counted",
        timeout=5,
    )
    assert _server_errors(server) == errors_before
    logged = [line for line in server.log_lines() if line.get("event") == "client_disconnected"]
    assert logged
    assert all(line["level"] == "info" for line in logged)
    assert not [line for line in server.log_lines() if line.get("level") == "error"]


def test_many_slow_clients_at_once_leave_the_pool_free(server: Server, database_url: str) -> None:
    """The same starvation check, with readers in parallel threads hitting the victim."""
    attacker, victim = issue_tenant_sync(database_url), issue_tenant_sync(database_url)
    sockets = [_connect(server) for _ in range(POOL_SIZE * 3)]
    try:
        for sock in sockets:
            sock.sendall(_slow_retrieve_head(attacker, server, 50) + b"{")
        _wait_parked(server, len(sockets))

        def read(_: int) -> int:
            return httpx.get(
                f"{server.base_url}/api/v1/cards", headers=victim.headers(), timeout=5
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(read, range(16)))
        assert statuses == [200] * 16
    finally:
        for sock in sockets:
            sock.close()
