"""`cards-api export` and `import` against a real server, through the Python client."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cards_client import CardsClient
from tests.e2e.conftest import CARDS_API, Server, clean_env, run_cli
from tests.support import Tenant, card, count_rows, issue_tenant

pytestmark = pytest.mark.e2e


def cli_env(server: Server, tenant: Tenant) -> dict[str, str]:
    return clean_env(CARDS_URL=server.base_url, CARDS_API_KEY=tenant.key)


def without_ids(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        assert row.pop("id")
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


async def test_export_then_import_into_a_new_tenant_reproduces_every_card(
    server_on_test_database: Server, owner_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    source, target = await issue_tenant(owner_pool), await issue_tenant(owner_pool)
    with CardsClient(
        server_on_test_database.base_url, api_key=source.key, tenant_id=source.id
    ) as api:
        api.create_cards(
            [
                card(
                    "company",
                    "Acme",
                    content={"nested": {"list": [1, 2.5, None, "ü"]}},
                    external_ref="acme",
                ),
                card("voice", "Calm", tags=["tone", "brand"]),
                card("insight", "Leader", content={}),
            ]
        )
        api.create_cards([card("topic", f"Topic {i}", tags=[f"t{i}"]) for i in range(97)])
        archived = api.create_cards([card("example", "Gone")]).cards[0]
        api.archive(archived.id)
    first = tmp_path / "source.jsonl"
    exported = run_cli(
        "export",
        "--tenant",
        str(source.id),
        "-o",
        str(first),
        env=cli_env(server_on_test_database, source),
    )
    assert exported.returncode == 0, exported.stderr
    assert "exported 100 cards" in exported.stderr

    imported = run_cli(
        "import",
        str(first),
        "--tenant",
        str(target.id),
        env=cli_env(server_on_test_database, target),
    )
    assert imported.returncode == 0, imported.stderr
    assert "created 100, updated 0, already imported 0, failed 0" in imported.stdout

    second = tmp_path / "target.jsonl"
    again = run_cli(
        "export", "--tenant", str(target.id), env=cli_env(server_on_test_database, target)
    )
    second.write_text(again.stdout)
    assert without_ids(second) == without_ids(first)
    assert len(without_ids(first)) == 100


async def test_bad_lines_are_reported_and_a_rerun_creates_nothing_twice(
    server_on_test_database: Server, owner_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tenant = await issue_tenant(owner_pool)
    source = tmp_path / "cards.jsonl"
    source.write_text(
        "\n".join(
            [
                json.dumps(card("company", "Acme", external_ref="acme")),
                "this is not json",
                json.dumps(card("voice", "")),
                json.dumps(card("voice", "Calm")),
                json.dumps(card("company", "Acme v2", external_ref="acme")),
            ]
        )
        + "\n"
    )
    env = cli_env(server_on_test_database, tenant)
    first = run_cli("import", str(source), "--tenant", str(tenant.id), env=env)
    assert first.returncode == 1
    summary = first.stdout.strip()
    assert summary.count("\n") == 0
    assert "created 2, updated 1, already imported 0, failed 2" in summary
    assert "line 2: not valid JSON" in summary
    assert "line 3: title:" in summary

    second = run_cli("import", str(source), "--tenant", str(tenant.id), env=env)
    assert "created 0, updated 0, already imported 3, failed 2" in second.stdout
    assert await count_rows(owner_pool, "cards", tenant.id) == 2
    with CardsClient(
        server_on_test_database.base_url, api_key=tenant.key, tenant_id=tenant.id
    ) as api:
        assert sorted(c.title for c in api.list_cards()) == ["Acme v2", "Calm"]


async def test_an_import_killed_half_way_and_run_again_ends_with_exactly_every_card(
    server_on_test_database: Server, owner_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tenant = await issue_tenant(owner_pool)
    source = tmp_path / "ten-thousand.jsonl"
    with source.open("w") as out:
        for i in range(10_000):
            out.write(json.dumps(card("topic", f"Topic {i}", content={"n": i})) + "\n")
    env = cli_env(server_on_test_database, tenant)

    process = subprocess.Popen(
        [CARDS_API, "import", str(source), "--tenant", str(tenant.id)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while await count_rows(owner_pool, "cards", tenant.id) < 3_000:
        assert process.poll() is None, "the import finished before it could be interrupted"
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    interrupted_at = await count_rows(owner_pool, "cards", tenant.id)
    assert 3_000 <= interrupted_at < 10_000

    rerun = await asyncio.to_thread(
        run_cli, "import", str(source), "--tenant", str(tenant.id), env=env, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert await count_rows(owner_pool, "cards", tenant.id) == 10_000
    assert "failed 0" in rerun.stdout
    assert "already imported" in rerun.stdout
