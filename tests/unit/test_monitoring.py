"""Prometheus and Grafana as code (deploy/): valid for the tools that load them, and tested."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.monitoring import (
    DEPLOY,
    PROMETHEUS_DIR,
    alert_rules,
    binary,
    dashboard,
    metric_names,
    panel_queries,
)
from worker.metrics import Metrics

README = (Path(__file__).parents[2] / "README.md").read_text()


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS_DIR
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_prometheus_config_is_valid() -> None:
    promtool("check", "config", "prometheus.yml")


def test_alert_rules_are_valid() -> None:
    promtool("check", "rules", "rules.yml")


def test_alert_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "rules_test.yml").stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "rules_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} never fires"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} never stays silent"


def test_rules_and_panels_read_only_metrics_the_worker_exports() -> None:
    exported = {m.name for m in Metrics().registry.collect()}
    exported |= {f"{name}_total" for name in exported}  # counters collect without _total
    queries = [*panel_queries().values(), *(rule["expr"] for rule in alert_rules())]
    unknown = set().union(*map(metric_names, queries)) - exported
    assert not unknown, f"not exported by the worker: {sorted(unknown)}"


def test_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    for panel in dashboard()["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]


def test_readme_lists_every_panel_and_alert() -> None:
    operations = README.split("## Operations", 1)[1].split("\n## ", 1)[0]
    for panel in dashboard()["panels"]:
        assert f"*{panel['title']}*" in operations, panel["title"]
    for rule in alert_rules():
        assert f"`{rule['alert']}`" in operations, rule["alert"]
