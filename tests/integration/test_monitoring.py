"""The dashboard's queries on a real Prometheus scraping a live worker after real traffic."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Producer, alerts_for, event, read_until, running_worker
from tests.monitoring import PROMETHEUS_DIR, alert_rules, binary, metric_names, panel_queries
from worker.settings import Settings

ACCOUNTS = ("mon-1", "mon-2")
SCRAPE_INTERVAL = "1s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


@contextlib.contextmanager
def prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    """A real Prometheus scraping ``target`` every second; yields its base URL."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"},
        "rule_files": [str(PROMETHEUS_DIR / "rules.yml")],
        "scrape_configs": [{"job_name": "healthscore", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={address}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://{address}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(base: str, expr: str) -> list[dict[str, Any]]:
    body = json.loads(get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def answers(result: list[dict[str, Any]]) -> bool:
    """Some series with a number: NaN is what a quantile of no observations gives."""
    return any(not math.isnan(float(r["value"][1])) for r in result)


async def poll(condition: Any, what: str, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError, ValueError):
            # Off the event loop: the worker under test runs on it.
            if await asyncio.to_thread(condition):
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def traffic(settings: Settings) -> None:
    """Each event type, first scores and a tier change, and one record for the dead letters."""
    async with Producer(settings) as p:
        for account in ACCOUNTS:
            await p.send("login", event("login", account, user_id="u1", session_seconds=900))
            await p.send(
                "feature_use", event("feature_use", account, user_id="u1", feature="reports")
            )
            await p.send(
                "ticket",
                event("ticket", account, ticket_id="T-1", status="opened", priority="normal"),
            )
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: all(alerts_for(rs, a) for a in ACCOUNTS),
            within=60,
        )
        for ticket in ("T-1", "T-2"):
            await p.send(
                "ticket",
                event(
                    "ticket", ACCOUNTS[0], ticket_id=ticket, status="escalated", priority="urgent"
                ),
            )
        await p.send("survey", event("survey", ACCOUNTS[0], kind="nps", score=2))
        await p.raw(settings.topic_login, b"mon-bad", b"{not json")
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: len(alerts_for(rs, ACCOUNTS[0])) > 1,
            within=60,
        )


async def test_every_dashboard_query_answers_from_a_live_worker(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    settings = dataclasses.replace(settings, metrics_host="127.0.0.1", metrics_port=port)
    queries = panel_queries()
    async with running_worker(settings) as worker:
        worker.metrics.serve(settings.metrics_port, settings.metrics_host)  # as `worker` does
        with prometheus(tmp_path, f"127.0.0.1:{port}") as base:
            await poll(
                lambda: query(base, 'up{job="healthscore"} == 1'), "Prometheus scraping the worker"
            )
            await traffic(settings)
            applied = sum(
                s.value
                for m in worker.metrics.registry.collect()
                if m.name == "healthscore_events"
                for s in m.samples
                if s.name == "healthscore_events_total"
            )
            # Scraped after the traffic: the queries below see all of it.
            await poll(
                lambda: answers(query(base, f"sum(healthscore_events_total) >= {applied}")),
                "a scrape after the traffic",
            )
            scraped = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
            exported = {f.name for f in text_string_to_metric_families(scraped.decode())}
            exported |= {f"{name}_total" for name in exported}  # counters' families drop it
            missing = {
                title: sorted(metric_names(expr) - exported)
                for title, expr in queries.items()
                if metric_names(expr) - exported
            }
            # Rates need two samples after the traffic; give every query the time to answer.
            with contextlib.suppress(AssertionError):
                await poll(
                    lambda: all(answers(query(base, e)) for e in queries.values()),
                    "every panel query to answer",
                    within=30,
                )
            # The shipped alert rules, evaluated on the live series: none in error.
            rules = await asyncio.to_thread(get, f"{base}/api/v1/rules")
            health = {
                r["name"]: r["health"]
                for g in json.loads(rules)["data"]["groups"]
                for r in g["rules"]
            }
            assert health == {r["alert"]: "ok" for r in alert_rules()}, health
            results = {
                title: await asyncio.to_thread(query, base, expr) for title, expr in queries.items()
            }
            empty = [title for title, result in results.items() if not answers(result)]
    if missing or empty:  # both lists in one report: a missing metric also leaves a panel empty
        pytest.fail(
            f"panels reading metrics the worker does not export: {missing};"
            f" panels with no data after traffic: {empty}"
        )
