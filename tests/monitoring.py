"""The monitoring files under deploy/ as the tests read them, and the Prometheus binaries."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import _unavailable

DEPLOY = Path(__file__).parents[1] / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "healthscore.json"
# What Grafana puts in place of its interval variable; long enough for a rate to see
# the samples from before the traffic when Prometheus scrapes every second.
RATE_INTERVAL = "1m"
METRIC = re.compile(r"\bhealthscore_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def binary(name: str) -> str:
    """The path of ``name`` (promtool, prometheus): missing, a skip, and a failure under CI."""
    found = shutil.which(name)
    if found is None:
        _unavailable(name, [f"{name} is not on PATH (Debian: apt-get install prometheus)"])
    return found


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panel_queries() -> dict[str, str]:
    """ "panel title (refId)" -> PromQL as Prometheus receives it from Grafana."""
    return {
        f"{panel['title']} ({target['refId']})": target["expr"].replace(
            "$__rate_interval", RATE_INTERVAL
        )
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    }


def metric_names(expr: str) -> set[str]:
    """The healthscore metrics a query reads, as the worker names them (no histogram suffix)."""
    names = set()
    for name in METRIC.findall(expr):
        for suffix in HISTOGRAM_SUFFIXES:
            name = name.removesuffix(suffix)
        names.add(name)
    return names


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
