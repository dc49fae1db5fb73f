"""`cards-api serve` on a fresh embedded database: first start, the seed's flow, the key CLI
beside a running server, clean shutdown, and a restart that keeps the data."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import clean_env, run_cli, start_server
from tests.support import SEED_CARDS

pytestmark = pytest.mark.e2e


def _demo(stdout: str) -> tuple[str, str]:
    tenant = re.search(r"CARDS_TENANT_ID=([0-9a-f-]{36})", stdout)
    key = re.search(r"CARDS_API_KEY=(cards_\w+)", stdout)
    assert tenant, stdout
    assert key, stdout
    return tenant.group(1), key.group(1)


def _postmaster_running(data_dir: Path) -> bool:
    return (data_dir / "pgdata" / "postmaster.pid").exists()


def test_first_start_seed_flow_cli_and_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = clean_env(CARDS_DATA_DIR=str(data_dir))
    server = start_server(tmp_path / "run1", env)
    try:
        tenant_id, key = _demo(server.stdout())
        assert key not in server.stderr(), "the key must not reach the logs"
        h = {"Authorization": f"Bearer {key}", "X-Tenant-ID": tenant_id}
        with httpx.Client(base_url=server.base_url, headers=h, timeout=10) as api:
            # Onboarding creates the four seed cards in one batch, with an Idempotency-Key.
            onboarding = {"Idempotency-Key": "onboarding-2025-10-27"}
            created = api.post(
                "/api/v1/cards/batch", json={"cards": SEED_CARDS}, headers=onboarding
            )
            assert created.status_code == 201, created.text
            assert created.headers["Idempotent-Replayed"] == "false"
            replay = api.post("/api/v1/cards/batch", json={"cards": SEED_CARDS}, headers=onboarding)
            assert replay.headers["Idempotent-Replayed"] == "true"
            assert replay.content == created.content
            ids = [c["id"] for c in created.json()["cards"]]

            # A workflow retrieves them and reports using each, twice.
            retrieved = api.post("/api/v1/cards/retrieve", json={"card_ids": ids})
            assert [c["id"] for c in retrieved.json()["cards"]] == ids
            for expected in ("true", "false"):
                for card_id in ids:
                    used = api.post(
                        f"/api/v1/cards/{card_id}/usage",
                        json={"workflow_id": "run-1", "workflow_type": "premium_newsletter"},
                    )
                    assert used.headers["X-Event-Recorded"] == expected
            listed = api.get("/api/v1/cards").json()["cards"]
            assert sorted(c["usage_count"] for c in listed) == [2, 2, 2, 2]

            # The key CLI works beside the running server, on the same embedded database.
            made = run_cli(
                "keys",
                "create",
                "--tenant",
                tenant_id,
                "--scope",
                "cards:read",
                "--name",
                "reader",
                "--json",
                env=env,
            )
            assert made.returncode == 0, made.stderr
            issued = json.loads(made.stdout)
            assert set(issued) == {"id", "tenant_id", "name", "scopes", "key"}
            assert (issued["tenant_id"], issued["name"], issued["scopes"]) == (
                tenant_id,
                "reader",
                ["cards:read"],
            )
            reader = {"Authorization": f"Bearer {issued['key']}"}
            assert api.get("/api/v1/cards", headers=reader).status_code == 200
            assert (
                api.post(
                    "/api/v1/cards/batch", json={"cards": SEED_CARDS[:1]}, headers=reader
                ).status_code
                == 403
            )

            listing = run_cli("keys", "list", "--tenant", tenant_id, "--json", env=env)
            keys = json.loads(listing.stdout)
            assert sorted(k["name"] for k in keys) == ["demo", "reader"]
            assert all("key" not in k and k["revoked_at"] is None for k in keys)
            assert issued["key"] not in listing.stdout

            revoked = run_cli("keys", "revoke", issued["id"], env=env)
            assert revoked.returncode == 0, revoked.stderr
            # Every worker hears the revocation notice and drops the key from its cache.
            deadline = time.monotonic() + 2
            while api.get("/api/v1/cards", headers=reader).status_code != 401:
                assert time.monotonic() < deadline, "the revoked key still works"
                time.sleep(0.05)
            assert api.get("/health").status_code == 200  # the CLI did not stop the database
    finally:
        exit_code = server.stop()
    assert exit_code == 0, server.stderr()
    deadline = time.monotonic() + 15
    while _postmaster_running(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _postmaster_running(data_dir), "the embedded PostgreSQL should stop with the server"
    assert "Traceback" not in server.stderr()

    again = start_server(tmp_path / "run2", env)
    try:
        assert "CARDS_API_KEY" not in again.stdout(), "the demo key is printed only once"
        with httpx.Client(base_url=again.base_url, headers=h, timeout=10) as api:
            cards = api.get("/api/v1/cards").json()["cards"]
            assert sorted(c["id"] for c in cards) == sorted(ids)
            assert api.get("/ready").status_code == 200
    finally:
        assert again.stop() == 0
