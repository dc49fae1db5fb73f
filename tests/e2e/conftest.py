"""Real `cards-api` processes: started from the installed console script, stopped by signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

CARDS_API = str(Path(sys.executable).parent / "cards-api")


def clean_env(**overrides: str) -> dict[str, str]:
    """The test's environment without any Cards API setting, plus `overrides`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CARDS_") and k != "DATABASE_URL"
    }
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Poll `condition` until it is true: tests wait on what they need, never a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CARDS_API, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Server:
    process: subprocess.Popen[str]
    base_url: str
    stdout_path: Path
    stderr_path: Path
    exit_code: int | None = field(default=None)

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's log so far, one JSON object a line; any other line fails the test."""
        lines = []
        for raw in self.stderr().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                pytest.fail(f"a log line is not JSON: {raw!r}")
        return lines

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.exit_code = self.process.wait(timeout=timeout)
        return self.exit_code


def start_server(
    logs: Path,
    env: dict[str, str],
    *extra: str,
    ready_timeout: float = 90,
    port: int | None = None,
) -> Server:
    port = port or free_port()
    logs.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = logs / "stdout.log", logs / "stderr.log"
    with stdout_path.open("w") as out, stderr_path.open("w") as err:
        process = subprocess.Popen(
            [CARDS_API, "serve", "--port", str(port), *extra],
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", stdout_path, stderr_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"cards-api exited with {process.returncode}:\n{server.stderr()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise AssertionError(
        f"cards-api did not answer /health in {ready_timeout}s:\n{server.stderr()}"
    )


@pytest.fixture
def server_on_test_database(database_url: str, tmp_path: Path) -> Iterator[Server]:
    # No rate limit: these tests send bursts with one key (the limit has tests of its own).
    env = clean_env(DATABASE_URL=database_url, CARDS_RATE_LIMIT="0")
    server = start_server(tmp_path / "logs", env)
    try:
        yield server
    finally:
        server.stop()
