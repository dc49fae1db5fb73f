"""Importing the CLI never imports prometheus_client: `serve` must set the metrics folder of
multiprocess mode before the first import, or every worker's counts would be lost to scrapes."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_imports_no_metrics() -> None:
    code = "import sys, cards_api.cli; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"
