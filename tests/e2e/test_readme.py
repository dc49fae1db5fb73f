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


def walkthrough() -> str:
    text = README.read_text()
    match = re.search(r"<!-- walkthrough -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert match, "README.md lost its walk-through block"
    return match.group(1)


async def test_the_readme_walkthrough_works_when_pasted(
    server_on_test_database: Server, owner_pool: asyncpg.Pool
) -> None:
    tenant = await issue_tenant(owner_pool)
    env = clean_env(
        CARDS_URL=server_on_test_database.base_url,
        CARDS_TENANT_ID=str(tenant.id),
        CARDS_API_KEY=tenant.key,
    )
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.lower()
    assert '"created":4' in out
    assert "idempotent-replayed: true" in out
    recorded = re.findall(r"x-event-recorded: (true|false)", out)
    assert recorded == ["true", "false"]
    assert '"usage_count":2' in out
    assert 'etag: "1"' in out
