"""The metrics bundle: what each new metric records, on the worker's own registry."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from tests.integration.harness import Record
from worker.alerts import Alert, AlertModel, Cause
from worker.metrics import Metrics, batch_buckets
from worker.pipeline import Outcome, _origins
from worker.runtime.loop import _Rebalance


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def alert(
    previous: str | None,
    tier: str,
    *,
    delivery: str = "live",
    offset: int | None = 0,
    topic: str = "t",
    partition: int = 0,
) -> tuple[str, Alert]:
    cause = Cause(
        "event",
        None,
        None,
        topic if offset is not None else None,
        partition if offset is not None else None,
        offset,
    )
    return "acct", Alert(
        "id",
        "acct",
        None,
        previous,
        tier,
        tier,
        None,
        50.0,
        None,
        {},
        cause,
        delivery,
        "m",
        AlertModel("m", "default"),
        "2026-01-15T12:00:00.000+00:00",
        1,
    )


@pytest.mark.parametrize("largest", [30000, 500, 7, 1])
def test_batch_buckets_reach_the_largest_batch(largest: int) -> None:
    metrics = Metrics(batch_max_records=largest)
    assert batch_buckets(largest)[-1] == largest
    metrics.batch_size.observe(largest)
    # The largest batch lands in a finite bucket, not only in +Inf.
    assert value(metrics, "healthscore_batch_records_bucket", le=f"{float(largest)}") == 1
    assert list(batch_buckets(largest)) == sorted(set(batch_buckets(largest)))


def test_tier_changes_count_transitions_and_move_accounts_between_tiers() -> None:
    metrics = Metrics()
    metrics.set_tier_counts({"green": 5, "yellow": 0, "red": 1})
    metrics.tier_changes(
        [
            alert(None, "green"),
            alert(None, "green"),
            alert("green", "red"),
            alert("yellow", "green"),
        ]
    )
    transitions = "healthscore_tier_transitions_total"
    assert value(metrics, transitions, **{"from": "none", "to": "green"}) == 2
    assert value(metrics, transitions, **{"from": "green", "to": "red"}) == 1
    assert value(metrics, transitions, **{"from": "yellow", "to": "green"}) == 1
    # green: 5 + 2 first scores - 1 to red + 1 from yellow
    assert value(metrics, "healthscore_accounts", tier="green") == 7
    assert value(metrics, "healthscore_accounts", tier="red") == 2
    assert value(metrics, "healthscore_accounts", tier="yellow") == -1  # until the next count
    metrics.set_tier_counts({"yellow": 0})
    assert value(metrics, "healthscore_accounts", tier="yellow") == 0


def test_lag_is_set_per_partition_and_dropped_when_revoked() -> None:
    metrics = Metrics()
    metrics.set_lag({("events", 0): 12, ("events", 1): 0})
    assert value(metrics, "healthscore_consumer_lag", topic="events", partition="0") == 12
    assert value(metrics, "healthscore_consumer_lag", topic="events", partition="1") == 0
    metrics.drop_lag([("events", 0), ("events", 7)])  # 7: never measured, no error
    assert value(metrics, "healthscore_consumer_lag", topic="events", partition="0") is None
    assert value(metrics, "healthscore_consumer_lag", topic="events", partition="1") == 0


def test_a_revoked_partition_loses_its_lag_series() -> None:
    metrics = Metrics()
    metrics.set_lag({("events", 0): 3, ("events", 1): 4})
    loop = SimpleNamespace(
        metrics=metrics,
        revoking=asyncio.Event(),
        in_flight=asyncio.Lock(),
        pipeline=SimpleNamespace(forget=lambda partitions: None),
        probes=SimpleNamespace(revoking=False),
        remodel=None,
    )
    asyncio.run(_Rebalance(loop).on_partitions_revoked([TopicPartition("events", 0)]))  # type: ignore[arg-type]
    assert value(metrics, "healthscore_consumer_lag", topic="events", partition="0") is None
    assert value(metrics, "healthscore_consumer_lag", topic="events", partition="1") == 4


def test_latency_is_observed_from_each_origin_to_the_acknowledgement() -> None:
    metrics = Metrics()
    metrics.observe_latency([100.0, 98.0, 101.0], acknowledged=100.5)
    assert value(metrics, "healthscore_event_to_alert_seconds_count") == 3
    assert value(metrics, "healthscore_event_to_alert_seconds_sum") == pytest.approx(0.5 + 2.5)
    assert value(metrics, "healthscore_event_to_alert_seconds_bucket", le="600.0") == 3
    assert value(metrics, "healthscore_event_to_alert_seconds_bucket", le="0.5") == 2


def test_origins_are_the_causing_records_of_live_alerts_only() -> None:
    records = [
        Record("a", p, o, b"k", b"v", timestamp=1_000 * (10 * p + o))
        for p in (0, 1)
        for o in range(5)
    ]
    outcome = Outcome(
        alerts=[
            alert(None, "green", topic="a", partition=1, offset=3),
            alert(None, "red", topic="a", partition=0, offset=2, delivery="catch_up"),
            alert("red", "yellow", offset=None),  # a window expiry
            alert(None, "green", topic="a", partition=0, offset=9),
        ]
    )  # not here
    assert _origins(records, outcome) == [13.0]  # type: ignore[arg-type]


def test_process_and_runtime_collectors_are_on_the_workers_registry() -> None:
    metrics = Metrics()
    names = {m.name for m in metrics.registry.collect()}
    assert {"python_info", "python_gc_collections"} <= names
    if sys.platform == "linux":
        assert value(metrics, "process_resident_memory_bytes")
        assert value(metrics, "process_cpu_seconds_total") is not None
    # Each bundle its own: a second one does not collide with the first.
    Metrics()
