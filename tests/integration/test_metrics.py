"""The Grafana metrics of a live worker, after real traffic on a real broker and Redis."""

from __future__ import annotations

import asyncio
import time

from tests.integration.harness import Producer, alerts_for, event, read_until, running_worker
from worker.app import Worker
from worker.settings import Settings


def sample(worker: Worker, name: str, **labels: str) -> float | None:
    return worker.metrics.registry.get_sample_value(name, labels)


async def wait_for(condition: object, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def lags(worker: Worker) -> dict[tuple[str, str], float]:
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for m in worker.metrics.registry.collect()
        if m.name == "healthscore_consumer_lag"
        for s in m.samples
    }


async def test_new_metrics_after_traffic(settings: Settings) -> None:
    async with running_worker(settings) as worker, Producer(settings) as p:
        sent = time.time()
        for account in ("m-1", "m-2", "m-3"):
            await p.send(
                "ticket",
                event("ticket", account, ticket_id="T-1", status="opened", priority="normal"),
            )
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: all(alerts_for(rs, a) for a in ("m-1", "m-2", "m-3")),
        )
        first = {a["account_id"]: a for a in records}
        assert all(a["delivery"] == "live" and a["previous_tier"] is None for a in first.values())
        # Every partition of every input topic is this worker's; each gets a lag series
        # once fetched, and all are caught up after the traffic.
        owned = {
            (t, str(n)) for t in settings.input_topics for n in range(settings.topic_partitions)
        }
        await wait_for(
            lambda: set(lags(worker)) == owned and not any(lags(worker).values()),
            f"a zero lag for each of {sorted(owned)}: {lags(worker)}",
        )
        # One account moves on: a transition between two tiers, out of one and into another.
        for ticket in ("T-1", "T-2"):
            await p.send(
                "ticket",
                event("ticket", "m-1", ticket_id=ticket, status="escalated", priority="urgent"),
            )
        await p.send("survey", event("survey", "m-1", kind="nps", score=2))
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a["tier"] == "red" for a in alerts_for(rs, "m-1")),
        )
        latest = {a["account_id"]: a for a in records}  # in order: the last one wins
        moves = [(a["previous_tier"] or "none", a["tier"]) for a in records]
        assert all(a["delivery"] == "live" for a in records)
        for was, now in set(moves):
            assert sample(
                worker, "healthscore_tier_transitions_total", **{"from": was, "to": now}
            ) == moves.count((was, now))
        # Each live alert caused by an event: one latency observation, within the test's span.
        await wait_for(
            lambda: sample(worker, "healthscore_event_to_alert_seconds_count") == len(records),
            f"{len(records)} latency observations",
        )
        total = sample(worker, "healthscore_event_to_alert_seconds_sum")
        assert total is not None
        assert 0 <= total <= len(records) * (time.time() - sent + 1)
        # Counted from the index on schedule and moved by the worker's own changes: both
        # give the accounts' last published tiers, the tier moved out of included.
        expected = {
            tier: sum(a["tier"] == tier for a in latest.values())
            for tier in ("green", "yellow", "red")
        }
        await wait_for(
            lambda: (
                {t: sample(worker, "healthscore_accounts", tier=t) for t in expected} == expected
            ),
            f"accounts per tier {expected}",
        )


async def test_a_new_worker_counts_accounts_per_tier_from_the_index(settings: Settings) -> None:
    """The tier gauge is the population, not the changes a worker saw since it started."""
    async with running_worker(settings), Producer(settings) as p:
        for account in ("n-1", "n-2"):
            await p.send(
                "ticket",
                event("ticket", account, ticket_id="T-1", status="opened", priority="normal"),
            )
        records = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: all(alerts_for(rs, a) for a in ("n-1", "n-2")),
        )
    tier = records[-1]["tier"]
    expected = sum(a["tier"] == tier for a in records)
    async with running_worker(settings) as again:  # no new traffic: nothing changes
        await wait_for(
            lambda: sample(again, "healthscore_accounts", tier=tier) == expected,
            f"{expected} accounts in {tier} on a worker that saw no change",
        )
        assert (
            sample(again, "healthscore_tier_transitions_total", **{"from": "none", "to": tier})
            is None
        )
