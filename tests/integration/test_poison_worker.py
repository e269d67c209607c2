"""No record can stop a live worker: each poison class sent between two valid events
is dead-lettered (with the right reason, in a record that fits), the event after it
is scored, and a worker restarted in the same group does not trip on them again."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.harness import event, read_until, running_worker
from worker.contracts import validator
from worker.runtime.reader import read_to_end
from worker.settings import Settings

DEEP = b"[" * 512 + b"]" * 512  # 1 KiB: small, yet past the validator's depth limit


def _login(account: str, raw_extra: bytes = b"") -> bytes:
    body = orjson.dumps(event("login", account, user_id="u1", session_seconds=300))
    return body[:-1] + b"," + raw_extra + b"}" if raw_extra else body


def poisons(settings: Settings) -> list[tuple[str, str, bytes | None, bytes | None]]:
    """(name, topic, key, value) of each poison class, and the reason it should get."""
    login, accounts = settings.topic_login, settings.topic_accounts
    return [
        ("schema_violation", login, b"p", DEEP),
        ("schema_violation", accounts, b"p", DEEP),
        ("schema_violation", login, b"p", _login("p", b'"x":' + DEEP)),
        ("oversize", login, b"p", b"x" * 800_000),
        ("oversize", login, b"p", bytes(range(256)) * 8192),  # 2 MiB
        ("bad_key", login, b"k" * 500_000, _login("p")),
        ("invalid_json", login, b"p", b'{"event_id": "\xff\xfe"}'),
        ("invalid_json", login, b"p", _login("p", b'"session_seconds": 1' + b"0" * 400)),
        ("invalid_json", login, b"p", _login("p", b'"user_id": "\\ud800"')),
        ("invalid_json", login, b"p", b"NaN"),
    ]


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    # Larger requests than the worker's own: producers may send what the broker takes.
    client = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, max_request_size=8 * 1048576
    )
    await client.start()
    yield client
    await client.stop()


async def _send(
    producer: AIOKafkaProducer, topic: str, key: bytes | None, value: bytes | None
) -> None:
    # One partition for all, so each poison sits between two valid events in one log.
    await producer.send_and_wait(topic, value, key=key, partition=0)


def _dead_letters_fit(dead: list[dict[str, object]], settings: Settings) -> None:
    for letter in dead:
        assert validator("deadletter").is_valid(letter)
        assert len(orjson.dumps(letter)) < settings.max_request_bytes


async def test_poison_records_are_dead_lettered_and_the_worker_moves_on(
    settings: Settings, producer: AIOKafkaProducer
) -> None:
    cases = poisons(settings)
    async with running_worker(settings):
        await _send(producer, settings.topic_login, b"first", _login("first"))
        for i, (_, topic, key, value) in enumerate(cases):
            await _send(producer, topic, key, value)
            await _send(producer, settings.topic_login, f"after-{i}".encode(), _login(f"after-{i}"))
        alerts = await read_until(
            settings, settings.topic_alerts, lambda rs: len(rs) >= len(cases) + 1, within=120
        )
        dead = await read_until(
            settings, settings.topic_deadletter, lambda rs: len(rs) >= len(cases), within=60
        )
    assert {a["account_id"] for a in alerts} == {
        "first",
        *(f"after-{i}" for i in range(len(cases))),
    }
    assert [d["reason"] for d in dead] == [reason for reason, *_ in cases]
    _dead_letters_fit(dead, settings)
    two_mib = dead[4]
    assert two_mib["truncated"] is True
    assert two_mib["value_bytes"] == len(cases[4][3] or b"")
    assert two_mib["value_sha256"] == hashlib.sha256(cases[4][3] or b"").hexdigest()
    big_key = dead[5]
    assert base64.b64decode(big_key["key_b64"]) == cases[5][2]  # 500 KB fits whole

    # A worker restarted in the same group starts past them: no dead letter again,
    # and the next event is scored.
    async with running_worker(settings) as worker:
        await _send(producer, settings.topic_login, b"later", _login("later"))
        alerts = await read_until(
            settings,
            settings.topic_alerts,
            lambda rs: any(a["account_id"] == "later" for a in rs),
            within=60,
        )
        registry = worker.metrics.registry
        again = sum(
            registry.get_sample_value("healthscore_dead_letters_total", {"reason": r}) or 0
            for r, *_ in cases
        )
        scored = registry.get_sample_value("healthscore_events_total", {"type": "login"})
    assert again == 0
    assert scored == 1
    assert [a["account_id"] for a in alerts].count("later") == 1


async def test_a_replay_reads_records_far_above_the_fetch_size(
    settings: Settings, producer: AIOKafkaProducer
) -> None:
    """The reader's fetch size is a hint, not a cap: a record above it is still read."""
    big = b"x" * (4 * 1048576)  # above max_partition_fetch_bytes (1 MiB by default)
    for value in (b"small", big, b"after"):
        await _send(producer, settings.topic_login, b"k", value)
    values = [
        r.value async for batch in read_to_end(settings, [settings.topic_login], 100) for r in batch
    ]
    assert values == [b"small", big, b"after"]
