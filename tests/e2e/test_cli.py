"""The CLI's failure modes: one clear line, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from cards_api.db.migrate import SCHEMA_HEAD
from tests.e2e.conftest import clean_env, run_cli, start_server

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("name", "value"),
    [("CARDS_AUTH_MODE", "bogus"), ("CARDS_IDEMPOTENCY_TTL", "-5"), ("DATABASE_URL", "mysql://x")],
)
def test_a_bad_setting_stops_with_one_line(name: str, value: str) -> None:
    for command in (["serve"], ["migrate"], ["keys", "list", "--tenant", str(uuid.uuid4())]):
        result = run_cli(*command, env=clean_env(**{name: value}))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"cards-api: invalid setting {name}:")


def test_an_unreachable_database_is_one_line() -> None:
    result = run_cli("migrate", env=clean_env(DATABASE_URL="postgresql://cards@127.0.0.1:1/cards"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("cards-api: database error:")


def test_migrate_is_idempotent(database_url: str) -> None:
    for _ in range(2):
        result = run_cli("migrate", env=clean_env(DATABASE_URL=database_url))
        assert result.returncode == 0, result.stderr
        assert f"at revision {SCHEMA_HEAD}" in result.stdout


def test_keys_on_an_external_database(database_url: str) -> None:
    env = clean_env(DATABASE_URL=database_url)
    tenant = str(uuid.uuid4())
    created = run_cli("keys", "create", "--tenant", tenant, env=env)
    assert created.returncode == 0, created.stderr
    assert "cards:read, cards:write, usage:write" in created.stdout
    assert "not shown again" in created.stdout
    table = run_cli("keys", "list", "--tenant", tenant, env=env)
    assert table.returncode == 0
    assert "cards:read" in table.stdout
    keys = json.loads(run_cli("keys", "list", "--tenant", tenant, "--json", env=env).stdout)
    assert len(keys) == 1
    assert keys[0]["scopes"] == ["cards:read", "cards:write", "usage:write"]


def test_revoking_an_unknown_key_fails_clearly(database_url: str) -> None:
    result = run_cli("keys", "revoke", str(uuid.uuid4()), env=clean_env(DATABASE_URL=database_url))
    assert result.returncode == 1
    assert result.stderr.startswith("cards-api: no active key with id")


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--tenant", "not-a-uuid"],
        ["keys", "create", "--tenant", str(uuid.uuid4()), "--scope", "admin"],
        ["keys", "revoke", "nope"],
        ["serve", "--port", "0"],
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], database_url: str) -> None:
    result = run_cli(*args, env=clean_env(DATABASE_URL=database_url))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_header_mode_warns_at_start(database_url: str, tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "logs", clean_env(DATABASE_URL=database_url, CARDS_AUTH_MODE="header")
    )
    try:
        tenant = str(uuid.uuid4())
        created = httpx.post(
            f"{server.base_url}/api/v1/cards/batch",
            json={"cards": [{"card_type": "voice", "title": "t", "content": {}}]},
            headers={"X-Tenant-ID": tenant},
        )
        assert created.status_code == 201
    finally:
        server.stop()
    warnings = [
        json.loads(line) for line in server.stderr().splitlines() if '"auth_mode_header"' in line
    ]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning"
