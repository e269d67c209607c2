"""The worker end to end on a real broker and a real Redis."""

from __future__ import annotations

import asyncio
import base64
import time

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from redis.asyncio import Redis

from tests.integration.harness import (
    SHORT_WINDOWS,
    Producer,
    alerts_for,
    event,
    read_until,
    running_worker,
    valid_alert,
)
from worker.contracts import validator
from worker.modelfile import load_model, parse_model
from worker.settings import Settings
from worker.windows.buckets import bucket_of

DAY = 86400.0


async def _healthy_usage(p: Producer, account: str, users: int = 4, days: int = 10) -> None:
    now = time.time()
    for day in range(days):
        for u in range(users):
            ts = now - day * DAY - u
            await p.send(
                "login", event("login", account, ts, user_id=f"u{u}", session_seconds=1500)
            )
            await p.send(
                "feature_use",
                event(
                    "feature_use", account, ts, user_id=f"u{u}", feature=f"feature-{(day + u) % 10}"
                ),
            )


async def test_healthy_account_goes_green(settings: Settings) -> None:
    async with running_worker(settings), Producer(settings) as p:
        await p.account("acme", segment="enterprise", seats_purchased=5, plan="pro")
        await _healthy_usage(p, "acme")
        # The history may be scored over several batches, the first on part of it.
        alerts = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a["tier"] == "green" for a in alerts_for(rs, "acme")),
        )
    first, *_ = chain = alerts_for(alerts, "acme")
    assert all(valid_alert(a) for a in chain)
    assert (first["previous_tier"], first["seq"]) == (None, 1)
    green = chain[-1]
    assert green["tier"] == "green"
    assert green["segment"] == "enterprise"
    assert green["components"]["license_utilization"]["value"] == 0.8


async def test_escalations_and_detractor_nps_turn_an_account_red(settings: Settings) -> None:
    async with running_worker(settings), Producer(settings) as p:
        await p.account("globex", segment="mid_market", seats_purchased=10)
        await p.send(
            "ticket", event("ticket", "globex", ticket_id="T-1", status="opened", priority="normal")
        )
        await read_until(settings, settings.topic_alerts, lambda rs: bool(alerts_for(rs, "globex")))
        for ticket in ("T-1", "T-2"):
            await p.send(
                "ticket",
                event("ticket", "globex", ticket_id=ticket, status="escalated", priority="urgent"),
            )
        await p.send("survey", event("survey", "globex", kind="nps", score=2))
        alerts = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a["tier"] == "red" for a in alerts_for(rs, "globex")),
        )
    red = next(a for a in alerts_for(alerts, "globex") if a["tier"] == "red")
    assert valid_alert(red)
    assert red["triggering_component"]["name"] in {"escalations", "nps"}
    assert red["triggering_component"]["contribution_change"] < 0
    assert red["cause"]["kind"] == "event"
    assert red["cause"]["event_type"] in {"ticket", "survey"}
    assert red["previous_tier"] is not None
    assert red["score"] < red["previous_score"]


async def test_bad_input_is_dead_lettered_and_the_next_event_still_scored(
    settings: Settings,
) -> None:
    garbage = [
        (b"initech", b"{not json"),
        (b"initech", orjson.dumps(event("login", "initech"))),  # no user_id
        (b"initech", b"x" * (settings.max_message_bytes + 1)),
        (b"bad id!", orjson.dumps(event("login", "bad id!", user_id="u"))),
        (b"initech", orjson.dumps(event("login", "initech", time.time() + 30 * DAY, user_id="u"))),
        (None, orjson.dumps(event("login", "initech", user_id="u"))),
    ]
    async with running_worker(settings), Producer(settings) as p:
        for key, value in garbage:
            await p.raw(settings.topic_login, key, value)
        await p.send("login", event("login", "initech", user_id="u1", session_seconds=600))
        dead = await read_until(
            settings, settings.topic_deadletter, lambda rs: len(rs) >= len(garbage)
        )
        alerts = await read_until(
            settings, settings.topic_alerts, lambda rs: bool(alerts_for(rs, "initech"))
        )
    assert all(validator("deadletter").is_valid(d) for d in dead)
    by_reason = {d["reason"]: d for d in dead}
    assert sorted(d["reason"] for d in dead) == sorted(
        [
            "invalid_json",
            "schema_violation",
            "oversize",
            "schema_violation",
            "timestamp_out_of_range",
            "bad_key",
        ]
    )
    assert base64.b64decode(by_reason["invalid_json"]["value_b64"]) == b"{not json"
    assert by_reason["invalid_json"]["source"]["topic"] == settings.topic_login
    assert by_reason["timestamp_out_of_range"]["field"] == "/ts"
    assert alerts_for(alerts, "initech")[0]["cause"]["event_type"] == "login"


async def test_late_event_lands_in_its_own_bucket(settings: Settings, redis_url: str) -> None:
    model = load_model()
    now = time.time()
    late = now - 3 * DAY
    async with running_worker(settings) as worker, Producer(settings) as p:
        await p.send("login", event("login", "hooli", now, user_id="u1"))
        await read_until(settings, settings.topic_alerts, lambda rs: bool(alerts_for(rs, "hooli")))
        await p.send("login", event("login", "hooli", late, user_id="u2", session_seconds=90))
        await p.send("login", event("login", "hooli", now - 200 * DAY, user_id="u3"))  # too old
        await p.send("survey", event("survey", "hooli", kind="csat", score=5))
        redis = Redis.from_url(redis_url)
        try:
            counters = await _wait_for_field(redis, "hs:{hooli}:c", "csat_n")
            users = await redis.zrange("hs:{hooli}:u", 0, -1)
        finally:
            await redis.aclose()
        too_old = worker.metrics.registry.get_sample_value("healthscore_events_too_old_total")
    assert too_old == 1
    today, late_bucket = bucket_of(now, model.bucket_seconds), bucket_of(late, model.bucket_seconds)
    assert counters[f"{today}|login".encode()] == b"1"
    assert counters[f"{late_bucket}|login".encode()] == b"1"
    assert counters[f"{late_bucket}|sess_sum".encode()] == b"90"
    assert sorted(users) == [b"u1", b"u2"]


async def _wait_for_field(redis: Redis, key: str, suffix: str) -> dict[bytes, bytes]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        fields = await redis.hgetall(key)
        if any(f.endswith(suffix.encode()) for f in fields):
            return fields  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{key} never got a {suffix} field")


async def test_second_scale_windows_roll_with_the_clock(settings: Settings) -> None:
    model = parse_model(SHORT_WINDOWS, source="test")
    async with running_worker(settings, model), Producer(settings) as p:
        for _ in range(3):
            await p.send("login", event("login", "wayne", user_id="u1"))
        await p.send(
            "ticket", event("ticket", "wayne", ticket_id="T", status="opened", priority="low")
        )
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a["tier"] == "green" for a in alerts_for(rs, "wayne")),
        )
        await asyncio.sleep(4)  # the logins leave their 3 s window
        await p.send(
            "ticket", event("ticket", "wayne", ticket_id="T", status="resolved", priority="low")
        )
        alerts = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a["tier"] != "green" for a in alerts_for(rs, "wayne")),
        )
    change = alerts_for(alerts, "wayne")[-1]
    assert change["previous_tier"] == "green"
    assert change["components"]["login_frequency"]["value"] == 0.0
    assert change["triggering_component"]["name"] == "login_frequency"
    assert change["model_version"] == "short-windows-test"


async def test_alerts_land_where_the_default_partitioner_puts_their_account(
    settings: Settings,
) -> None:
    # Sent in batches to the account's input partition (the topics are co-partitioned):
    # consumers must find them exactly where a keyed send would have put them.
    accounts = [f"part-{i}" for i in range(12)]
    async with running_worker(settings), Producer(settings) as p:
        for account in accounts:
            await p.send("login", event("login", account, user_id="u1"))
        await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: {a["account_id"] for a in rs} >= set(accounts),
        )
    consumer = AIOKafkaConsumer(
        settings.topic_alerts,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found: dict[str, int] = {}
        while set(found) < set(accounts):
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                found.update({r.key.decode(): tp.partition for r in batch if r.key})
    finally:
        await consumer.stop()
    every = list(range(settings.topic_partitions))
    assert {a: found[a] for a in accounts} == {
        a: DefaultPartitioner()(a.encode(), every, every) for a in accounts
    }
