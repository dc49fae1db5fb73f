"""External programs some tests drive (promtool, prometheus from Debian's `prometheus`)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, package: str = "prometheus") -> str:
    """The program's path; outside CI a missing program skips the test, in CI it fails it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is not None:
        return path
    message = f"{name} is not installed (Debian package `{package}`; .ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: required in CI")
    pytest.skip(message)
