"""The real API with two workers, scraped by a real Prometheus: counts summed over workers,
every dashboard and alert expression evaluated, promtool on the exposition, and the logs."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from tests.e2e.conftest import Server, clean_env, free_port, start_server
from tests.support import SEED_CARDS, Tenant, issue_tenant
from tests.tools import require_tool
from tests.unit.test_deploy_files import alert_expressions, dashboard_expressions

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).parents[2] / "deploy"
SECRET_CONTENT = "top-secret-card-content-7c1e"
METRICS_TOKEN = "scraper-token-for-the-e2e-test"


def fresh_get(url: str, **kwargs: Any) -> httpx.Response:
    """A request on a new connection, so the kernel may hand it to either worker; the
    operator's metrics token goes along (servers here are started with it)."""
    headers = {
        "Connection": "close",
        "Authorization": f"Bearer {METRICS_TOKEN}",
        **kwargs.pop("headers", {}),
    }
    return httpx.get(url, headers=headers, **kwargs)


@pytest.fixture
def two_workers(database_url: str, tmp_path: Path) -> Iterator[Server]:
    env = clean_env(DATABASE_URL=database_url, CARDS_METRICS_TOKEN=METRICS_TOKEN)
    server = start_server(tmp_path / "api", env, "--workers", "2")
    try:
        yield server
    finally:
        server.stop()


def drive_every_route(base_url: str, tenant: Tenant) -> int:
    """Call every route (with new connections, so both workers serve); return events recorded."""
    events = 0
    with httpx.Client(base_url=base_url, headers={"Connection": "close"}, timeout=10) as api:
        h = tenant.headers()
        cards = [{**c, "content": {**c["content"], "note": SECRET_CONTENT}} for c in SEED_CARDS]
        for attempt in range(2):  # the second is an idempotent replay
            response = api.post(
                "/api/v1/cards/batch",
                json={"cards": cards},
                headers={**h, "Idempotency-Key": "obs", "X-Trace-ID": f"obs-batch-{attempt}"},
            )
            assert response.status_code == 201
        ids = [c["id"] for c in response.json()["cards"]]
        assert (
            api.post("/api/v1/cards/retrieve", json={"card_ids": ids}, headers=h).status_code == 200
        )
        assert api.get("/api/v1/cards", headers=h).status_code == 200
        assert api.get(f"/api/v1/cards/{ids[0]}", headers=h).status_code == 200
        assert (
            api.patch(f"/api/v1/cards/{ids[0]}", json={"title": "Renamed"}, headers=h).status_code
            == 200
        )
        assert api.get(f"/api/v1/cards/{ids[0]}/versions", headers=h).status_code == 200
        for run in range(6):
            for card_id in ids:
                response = api.post(
                    f"/api/v1/cards/{card_id}/usage",
                    json={"workflow_id": f"run-{run % 3}", "workflow_type": "premium_newsletter"},
                    headers={**h, "X-Trace-ID": f"obs-usage-{run}-{card_id[:8]}"},
                )
                assert response.status_code == 200
                events += response.headers["X-Event-Recorded"] == "true"
        assert api.get(f"/api/v1/cards/{ids[0]}/usage", headers=h).status_code == 200
        assert api.get("/api/v1/usage/summary", headers=h).status_code == 200
        assert api.delete(f"/api/v1/cards/{ids[3]}", headers=h).status_code == 204
        assert api.get(f"/api/v1/cards/{uuid.uuid4()}", headers=h).status_code == 404
        bad = api.post(
            "/api/v1/cards/batch", json={"cards": []}, headers={**h, "X-Trace-ID": "obs-bad"}
        )
        assert bad.status_code == 422
        assert api.get("/health").status_code == 200
        assert api.get("/ready").status_code == 200
    return events


def scraped_events(base_url: str) -> float:
    text = fresh_get(f"{base_url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("card_usage_events_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Prometheus:
    def __init__(self, workdir: Path, api_url: str) -> None:
        config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
        config["global"]["scrape_interval"] = "1s"
        config["global"]["evaluation_interval"] = "1s"
        config["rule_files"] = [str(DEPLOY / name) for name in config["rule_files"]]
        config["scrape_configs"] = [
            j for j in config["scrape_configs"] if j["job_name"] == "cards-api"
        ]
        job = config["scrape_configs"][0]
        job["scrape_interval"] = "1s"
        job["static_configs"] = [{"targets": [api_url.removeprefix("http://")]}]
        workdir.mkdir(parents=True, exist_ok=True)
        # The deployment's scrape config, with the secret's file where this test keeps it.
        (workdir / "metrics_token").write_text(METRICS_TOKEN)
        job["authorization"]["credentials_file"] = str(workdir / "metrics_token")
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                require_tool("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait(lambda: httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200, 60)

    def wait(self, condition: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise AssertionError(
            f"timed out; prometheus log:\n{Path(self.log.name).read_text()[-3000:]}"
        )

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = response.json()
        return body

    def value(self, expr: str) -> float | None:
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self.log.close()


async def test_prometheus_scrapes_two_workers_and_every_expression_evaluates(
    two_workers: Server, owner_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tenant = await issue_tenant(owner_pool)
    events = drive_every_route(two_workers.base_url, tenant)
    assert events == 3 * 4

    # Whichever worker answers the scrape, the count is the sum over both.
    assert {scraped_events(two_workers.base_url) for _ in range(8)} == {float(events)}
    exposition = fresh_get(f"{two_workers.base_url}/metrics").text
    check = subprocess.run(
        [require_tool("promtool"), "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "", check.stdout
    assert check.stderr.strip() == "", check.stderr

    prometheus = Prometheus(tmp_path / "prometheus", two_workers.base_url)
    try:
        prometheus.wait(lambda: prometheus.value('up{job="cards-api"}') == 1.0, 60)
        prometheus.wait(
            lambda: prometheus.value('sum(card_usage_events_total{job="cards-api"})') == events, 60
        )
        # rate() needs a few samples in its window before the dashboard's panels show data.
        samples = 'count_over_time(cards_idempotency_replays_total{job="cards-api"}[1m])'
        prometheus.wait(lambda: (prometheus.value(samples) or 0) >= 4, 60)
        for expr in dashboard_expressions():
            concrete = expr.replace("$__rate_interval", "1m")
            answer = prometheus.query(concrete)
            assert answer["status"] == "success", (concrete, answer)
            assert answer["data"]["result"], f"no data for dashboard query: {concrete}"
        for expr in alert_expressions():
            answer = prometheus.query(expr)
            assert answer["status"] == "success", (expr, answer)
        rules = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()
        states = [r["health"] for g in rules["data"]["groups"] for r in g["rules"]]
        assert len(states) == 4
        assert set(states) <= {"ok", "unknown"}
    finally:
        prometheus.stop()


async def test_logs_are_json_with_trace_ids_and_never_secrets(
    two_workers: Server, owner_pool: asyncpg.Pool
) -> None:
    tenant = await issue_tenant(owner_pool)
    drive_every_route(two_workers.base_url, tenant)
    denied = httpx.get(
        f"{two_workers.base_url}/api/v1/cards",
        headers={"Authorization": "Bearer cards_not-a-real-key", "X-Tenant-ID": str(tenant.id)},
    )
    assert denied.status_code == 401
    two_workers.stop()

    lines = two_workers.log_lines()
    requests = [line for line in lines if line.get("event") == "request"]
    by_trace = {line["trace_id"]: line for line in requests}
    usage_line = next(v for k, v in by_trace.items() if k.startswith("obs-usage-"))
    assert usage_line["route"] == "/api/v1/cards/{card_id}/usage"
    assert usage_line["status"] == 200
    assert usage_line["tenant_id"] == str(tenant.id)
    assert usage_line["level"] == "info"
    assert isinstance(usage_line["duration_ms"], float)
    assert usage_line["timestamp"].endswith("Z")
    assert by_trace["obs-batch-1"]["status"] == 201
    assert by_trace["obs-bad"]["status"] == 422
    assert {"timestamp", "level", "event", "trace_id"} <= set(lines[0]) | {"trace_id"}

    text = two_workers.stderr()
    assert tenant.key not in text
    assert "cards_not-a-real-key" not in text
    assert SECRET_CONTENT not in text
    assert "Renamed" not in text  # a PATCH body
    assert "premium_newsletter" not in text  # a usage body


def test_metrics_start_from_zero_on_a_fresh_start(database_url: str, tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=database_url, CARDS_METRICS_TOKEN=METRICS_TOKEN)
    for run in ("first", "second"):
        server = start_server(tmp_path / run, env, "--workers", "2")
        try:
            for _ in range(5):
                fresh_get(f"{server.base_url}/ready")
            text = fresh_get(f"{server.base_url}/metrics").text
        finally:
            assert server.stop() == 0
        ready = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("cards_api_requests_total{") and 'route="/ready"' in line
        ]
        assert ready == [5.0], (run, ready)
