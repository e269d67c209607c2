"""Liveness and readiness judged from what the loop records, on a fake clock; and the
endpoint's routes (a real socket, no broker needed)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from worker import endpoint
from worker.embedded import HOST, free_port
from worker.probes import Probes

MAX_AGE = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def ready_probes(clock: FakeClock, partitions: int = 3) -> Probes:
    probes = Probes(clock)
    probes.partitions = partitions
    probes.polled()
    probes.answer("kafka")
    probes.answer("redis")
    return probes


def test_healthz_fails_once_the_loop_stops_polling(clock: FakeClock) -> None:
    probes = Probes(clock)
    probes.polled()
    clock.now += 60
    assert probes.healthz(60).ok
    clock.now += 1
    verdict = probes.healthz(60)
    assert not verdict.ok
    assert verdict.body["alive"] is False
    assert "no poll for 61 s" in str(verdict.body["reasons"])
    probes.beat()  # a back-off waited out during an outage is a sign of life
    assert probes.healthz(60).ok


def test_start_up_counts_as_a_sign_of_life(clock: FakeClock) -> None:
    probes = Probes(clock)
    assert probes.healthz(60).ok
    clock.now += 61
    assert not probes.healthz(60).ok


def test_ready_when_assigned_and_both_answered_recently(clock: FakeClock) -> None:
    verdict = ready_probes(clock).readyz(MAX_AGE)
    assert verdict.ok
    assert verdict.body == {
        "ready": True,
        "reasons": [],
        "partitions": 3,
        "answered_ages_seconds": {"kafka": 0.0, "redis": 0.0},
    }


def test_not_ready_before_the_first_assignment(clock: FakeClock) -> None:
    probes = Probes(clock)
    probes.answer("redis")
    verdict = probes.readyz(MAX_AGE)
    assert not verdict.ok
    assert "no partitions assigned yet" in verdict.body["reasons"]  # type: ignore[operator]


def test_not_ready_while_paused_by_an_outage_and_ready_again_after(clock: FakeClock) -> None:
    probes = ready_probes(clock)
    probes.paused_for = "redis"
    verdict = probes.readyz(MAX_AGE)
    assert not verdict.ok
    assert verdict.body["reasons"] == ["consumption paused: redis unavailable"]
    probes.paused_for = None
    assert probes.readyz(MAX_AGE).ok


@pytest.mark.parametrize("dependency", ["kafka", "redis"])
def test_not_ready_once_a_dependency_is_silent_too_long(clock: FakeClock, dependency: str) -> None:
    probes = ready_probes(clock)
    clock.now += MAX_AGE + 5
    other = {"kafka": "redis", "redis": "kafka"}[dependency]
    probes.answer(other)
    verdict = probes.readyz(MAX_AGE)
    assert not verdict.ok
    assert verdict.body["reasons"] == [f"{dependency} last answered 35 s ago (limit 30 s)"]
    probes.answer(dependency)
    assert probes.readyz(MAX_AGE).ok


def test_an_answer_of_the_past_never_moves_freshness_back(clock: FakeClock) -> None:
    probes = ready_probes(clock)
    probes.answer("kafka", age=100)
    assert probes.readyz(MAX_AGE).ok


def test_not_ready_during_a_rebalance(clock: FakeClock) -> None:
    probes = ready_probes(clock)
    probes.revoking = True
    assert probes.readyz(MAX_AGE).body["reasons"] == ["partitions being rebalanced"]


def test_a_worker_without_partitions_is_not_held_to_kafkas_silence(clock: FakeClock) -> None:
    probes = ready_probes(clock, partitions=0)
    clock.now += MAX_AGE + 5
    probes.answer("redis")
    assert probes.readyz(MAX_AGE).ok


def _get(port: int, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_the_endpoint_routes_metrics_probes_and_404(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    Counter("probe_test_total", "A counter.", registry=registry).inc()
    probes = ready_probes(clock)
    port = free_port()
    server = endpoint.start(HOST, port, registry, probes, endpoint.Thresholds(60, MAX_AGE))
    try:
        status, kind, body = _get(port, "/metrics")
        assert (status, kind.split(";")[0]) == (200, "text/plain")
        assert b"probe_test_total 1.0" in body
        assert _get(port, "/readyz")[0] == 200
        assert _get(port, "/healthz?verbose=1")[0] == 200
        probes.paused_for = "kafka"
        status, kind, body = _get(port, "/readyz")
        assert (status, kind) == (503, "application/json")
        assert json.loads(body)["reasons"] == ["consumption paused: kafka unavailable"]
        clock.now += 61
        assert _get(port, "/healthz")[0] == 503
        for path in ("/", "/metricsx", "/readyz/x", "/favicon.ico"):
            assert _get(port, path)[0] == 404, path
    finally:
        server.shutdown()
        server.server_close()
