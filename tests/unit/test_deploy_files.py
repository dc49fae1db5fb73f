"""deploy/ agrees with the code: ports, health path, metric names, environment variables and
the scrape token."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import yaml

from cards_api import metrics
from cards_api.cli import serve
from cards_api.settings import Settings

DEPLOY = Path(__file__).parents[2] / "deploy"
PORT = inspect.signature(serve.serve).parameters["port"].default


def _yaml(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana/dashboards/cards-api.json").read_text())
    return data


def dashboard_expressions() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]


def alert_expressions() -> list[str]:
    return [r["expr"] for g in _yaml("alerts.yml")["groups"] for r in g["rules"]]


def _metric_series() -> set[str]:
    names = {"up"}
    for collector in (
        metrics.REQUESTS,
        metrics.REQUEST_DURATION,
        metrics.USAGE_EVENTS,
        metrics.USAGE_WRITE_DURATION,
        metrics.IDEMPOTENCY_REPLAYS,
    ):
        for family in collector.describe():
            names |= {
                family.name,
                f"{family.name}_total",
                f"{family.name}_bucket",
                f"{family.name}_count",
                f"{family.name}_sum",
            }
    names.add("cards_api_database_ready")
    return names


def test_spec_metric_names_are_defined() -> None:
    expected = {
        "cards_api_requests_total",
        "cards_api_request_duration_seconds_bucket",
        "card_usage_events_total",
        "cards_usage_write_duration_seconds_bucket",
        "cards_idempotency_replays_total",
    }
    assert expected <= _metric_series()


def test_dashboard_and_alerts_use_only_metrics_the_code_exposes() -> None:
    series = _metric_series()
    for expr in [*dashboard_expressions(), *alert_expressions()]:
        used = set(re.findall(r"\b(cards?_[a-z_]+|up)\b(?=\s*[{\[])", expr))
        assert used, expr
        assert used <= series, (expr, used - series)


def test_dashboard_covers_what_operators_need() -> None:
    exprs = " ".join(dashboard_expressions())
    for needed in (
        "sum by (route) (rate(cards_api_requests_total",
        'status=~"5.."',
        "histogram_quantile(0.95, sum by (le, route)",
        "histogram_quantile(0.99, sum by (le, route)",
        "sum by (card_type) (rate(card_usage_events_total",
        "sum by (workflow_type) (rate(card_usage_events_total",
        "cards_usage_write_duration_seconds_bucket",
        "cards_idempotency_replays_total",
    ):
        assert needed in exprs, needed
    assert all(
        t["datasource"]["uid"] == "prometheus" for p in _dashboard()["panels"] for t in p["targets"]
    )
    datasource = _yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    assert datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim\b", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user
    assert user[-1] not in ("root", "0")
    assert f"EXPOSE {PORT}" in text
    healthcheck = re.search(r"^HEALTHCHECK(?:[^\n]*\\\n)*[^\n]*", text, re.M)
    assert healthcheck
    assert f"127.0.0.1:{PORT}/health" in healthcheck.group(0)
    cmd = json.loads(re.findall(r"^CMD (\[.*\])$", text, re.M)[-1])
    assert cmd[:2] == ["cards-api", "serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - a container must listen
    assert cmd[cmd.index("--port") + 1] == str(PORT)


def _known_environment() -> set[str]:
    names = {"DATABASE_URL"}
    names |= {
        f"CARDS_{field.upper()}" for field in Settings.model_fields if field != "database_url"
    }
    return names


def test_compose_stack() -> None:
    compose = _yaml("docker-compose.yml")["services"]
    assert compose["postgres"]["image"] == "pgvector/pgvector:pg17"  # PostgreSQL 17 + pgvector
    assert "pg_isready" in " ".join(compose["postgres"]["healthcheck"]["test"])

    api = compose["api"]
    assert api["build"]["dockerfile"] == "deploy/Dockerfile"
    assert api["ports"] == [f"{PORT}:{PORT}"]
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    environment = api["environment"]
    assert set(environment) <= _known_environment(), set(environment) - _known_environment()
    assert environment["DATABASE_URL"].startswith("postgresql://")
    # The pool through PgBouncer in transaction mode; sessions direct to PostgreSQL.
    assert "@pgbouncer:6432/" in environment["DATABASE_URL"]
    assert "@postgres:5432/" in environment["CARDS_DATABASE_DIRECT_URL"]
    assert environment["CARDS_DB_POOLER"] == "transaction"
    ini = (DEPLOY / "pgbouncer" / "pgbouncer.ini").read_text()
    assert "pool_mode = transaction" in ini
    assert "host=postgres port=5432 dbname=cards" in ini
    mounts = " ".join(compose["pgbouncer"]["volumes"])
    assert "./pgbouncer/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini" in mounts

    assert compose["prometheus"]["ports"] == ["9090:9090"]
    prometheus_mounts = compose["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus_mounts
    assert "./alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus_mounts
    assert compose["grafana"]["ports"] == ["3000:3000"]
    mounts = " ".join(compose["grafana"]["volumes"])
    assert "./grafana/provisioning:/etc/grafana/provisioning" in mounts
    assert "./grafana/dashboards:/var/lib/grafana/dashboards" in mounts
    provider = _yaml("grafana/provisioning/dashboards/cards-api.yml")["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_the_api_every_10_seconds() -> None:
    config = _yaml("prometheus.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "cards-api")
    assert job["scrape_interval"] == "10s"
    assert job["metrics_path"] == "/metrics"
    # The scraper authenticates with the token the API is given (the same compose variable).
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    compose = _yaml("docker-compose.yml")
    assert compose["secrets"]["metrics_token"]["environment"] == "CARDS_METRICS_TOKEN"
    assert "metrics_token" in compose["services"]["prometheus"]["secrets"]
    assert "CARDS_METRICS_TOKEN" in compose["services"]["api"]["environment"]
    assert job["static_configs"][0]["targets"] == [f"api:{PORT}"]
    assert config["rule_files"] == ["alerts.yml"]
    alerts = {r["alert"] for g in _yaml("alerts.yml")["groups"] for r in g["rules"]}
    assert alerts == {
        "CardsApiDown",
        "CardsApiHigh5xxRatio",
        "CardsApiHighLatencyP95",
        "CardsApiDatabaseNotReady",
    }
