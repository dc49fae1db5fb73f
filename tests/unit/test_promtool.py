"""promtool on the Prometheus configuration and the alert rules' unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.tools import require_tool

DEPLOY = Path(__file__).parents[2] / "deploy"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_prometheus_config_and_rules_are_valid(tmp_path: Path) -> None:
    # promtool opens the scrape token's file, which is a compose secret in the deployment:
    # check the same configuration with the secret's file where this test keeps one.
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    token = tmp_path / "metrics_token"
    token.write_text("a-metrics-token-for-promtool")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    config["rule_files"] = [str(DEPLOY / name) for name in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = _promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
