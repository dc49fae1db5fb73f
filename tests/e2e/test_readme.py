"""The README's curl walk-through, pasted into bash against a real server."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.conftest import Server, clean_env
from tests.support import issue_tenant

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[2] / "README.md"


def walkthrough(marker: str = "walkthrough") -> str:
    text = README.read_text()
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert match, f"README.md lost its {marker} block"
    return match.group(1)


async def paste(server: Server, owner_pool: asyncpg.Pool, script: str) -> str:
    """Run `script` in bash as a new tenant would paste it; its output."""
    tenant = await issue_tenant(owner_pool)
    env = clean_env(
        CARDS_URL=server.base_url, CARDS_TENANT_ID=str(tenant.id), CARDS_API_KEY=tenant.key
    )
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_the_readme_walkthrough_works_when_pasted(
    server_on_test_database: Server, owner_pool: asyncpg.Pool
) -> None:
    out = await paste(server_on_test_database, owner_pool, walkthrough())
    out = out.lower()
    assert '"created":4' in out
    assert "idempotent-replayed: true" in out
    recorded = re.findall(r"x-event-recorded: (true|false)", out)
    assert recorded == ["true", "false"]
    assert '"usage_count":2' in out
    assert 'etag: "1"' in out


async def test_the_search_walkthrough_works_when_pasted_after_the_first(
    server_on_test_database: Server, owner_pool: asyncpg.Pool
) -> None:
    script = walkthrough() + "\n" + walkthrough("walkthrough-search")
    out = await paste(server_on_test_database, owner_pool, script)
    ranked = re.findall(r"^(0\.\d+) (.+)$", out, re.MULTILINE)
    assert ranked[0][1] == "Widget Pro pricing", out
    tokens = re.search(r"^(\d+) of 300 cl100k_base tokens$", out, re.MULTILINE)
    assert tokens is not None, out
    assert int(tokens.group(1)) <= 300
    assert "## Product\n\n### Widget Pro pricing" in out
    recorded = re.search(r"x-usage-recorded: (\d+)", out, re.IGNORECASE)
    assert recorded is not None
    assert int(recorded.group(1)) >= 1
    assert '"tokenizer":"cl100k_base"' in out
    assert '"embedder":"wordllama/l2_supercat_256"' in out
