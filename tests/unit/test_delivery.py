"""Delivery's order, with the broker and Redis as fakes: a failure at each step leaves
exactly what the next attempt (or the partition's next owner) needs, never more.
The crash tests (tests/integration/test_crash.py, test_exactly_once.py) show the
same against a real broker and Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

import pytest
from aiokafka import TopicPartition

from worker.rescore import Outcome
from worker.runtime.delivery import Delivery, Offsets, once
from worker.windows.outbox import OutboxEntry
from worker.windows.state import StateWrite

T = TypeVar("T")
OFFSETS: Offsets = {TopicPartition("events.login", 0): 42}


class Crash(Exception):
    """The process dying at one step."""


class World:
    """Redis, the broker and the consumer group, as much of them as delivery touches."""

    def __init__(self, *failing: str) -> None:
        self.steps: list[str] = []
        self.failing = list(failing)  # each name fails once, when it comes up
        self.outbox: dict[tuple[str, int], tuple[OutboxEntry, dict[str, Any]]] = {}
        self.published: list[dict[str, Any]] = []  # the alerts topic
        self.committed: list[Offsets] = []

    def step(self, name: str) -> None:
        self.steps.append(name)
        if name in self.failing:
            self.failing.remove(name)
            raise Crash(name)

    def delivery(self, *, commit: bool = True, retry: Any = once) -> Delivery:
        return Delivery(
            FakeStore(self), self.publish, retry, commit=self.commit if commit else None
        )

    async def publish(self, outcome: Outcome) -> None:
        self.step("publish")
        self.published += [alert for _, alert in outcome.alerts]

    async def commit(self, offsets: Offsets) -> None:
        self.step("commit")
        self.committed.append(offsets)

    def consumed(self) -> list[tuple[str, int]]:
        """What a consumer that keeps the first of each (account, seq) ends up with."""
        return sorted({(a["account_id"], a["seq"]) for a in self.published})


class FakeOutbox:
    def __init__(self, world: World) -> None:
        self._world = world

    async def sent(self, entries: Sequence[OutboxEntry]) -> None:
        self._world.step("clear")
        for e in entries:
            self._world.outbox.pop((e.account_id, e.seq), None)

    async def unsent(self, partitions: Collection[int]) -> list[tuple[OutboxEntry, dict[str, Any]]]:
        self._world.step("unsent")
        return [found for found in self._world.outbox.values() if found[0].partition in partitions]


class FakeStore:
    def __init__(self, world: World) -> None:
        self._world = world
        self.outbox = FakeOutbox(world)

    async def save(self, writes: Sequence[StateWrite]) -> None:
        self._world.step("save")
        for w in writes:
            if w.alert is not None:
                entry = OutboxEntry(w.partition, w.account_id, w.alert["seq"])
                self._world.outbox[w.account_id, w.alert["seq"]] = (entry, w.alert)

    async def durable(self) -> None:
        self._world.step("durable")


def outcome(account: str = "acme", seq: int = 1) -> Outcome:
    alert = {"account_id": account, "seq": seq, "tier": "red"}
    return Outcome(
        alerts=[(account, alert)],
        writes=[StateWrite(account, {}, partition=0, published={"seq": seq}, alert=alert)],
        outbox=[OutboxEntry(0, account, seq)],
    )


async def retry_until_done(operation: Callable[[], Awaitable[T]], dependency: str) -> T:
    """The live loop's policy, minus the waiting: again until it succeeds."""
    while True:
        try:
            return await operation()
        except Crash:
            continue


async def test_the_order_is_save_wait_publish_clear_commit() -> None:
    world = World()
    await world.delivery().deliver(outcome(), OFFSETS)
    assert world.steps == ["save", "durable", "publish", "clear", "commit"]
    assert world.consumed() == [("acme", 1)]
    assert world.outbox == {}
    assert world.committed == [OFFSETS]


@pytest.mark.parametrize("dies_in", ["save", "durable", "publish"])
async def test_dying_before_the_broker_has_the_alert_publishes_and_commits_nothing(
    dies_in: str,
) -> None:
    world = World(dies_in)
    with pytest.raises(Crash):
        await world.delivery().deliver(outcome(), OFFSETS)
    assert world.published == []
    assert world.committed == []  # the batch is read again


async def test_dying_in_the_publish_keeps_the_alert_for_the_next_owner() -> None:
    world = World("publish")
    with pytest.raises(Crash):
        await world.delivery().deliver(outcome(), OFFSETS)
    assert list(world.outbox) == [("acme", 1)]

    resent = await world.delivery().resend({0})  # the partition's next owner
    assert [a for _, a in resent.alerts] == [outcome().alerts[0][1]]
    assert world.consumed() == [("acme", 1)]
    assert world.outbox == {}


async def test_dying_before_the_outbox_is_cleared_sends_again_the_same_seq() -> None:
    world = World("clear")
    with pytest.raises(Crash):
        await world.delivery().deliver(outcome(), OFFSETS)
    assert world.committed == []
    assert list(world.outbox) == [("acme", 1)]

    await world.delivery().resend({0})
    assert len(world.published) == 2  # at least once ...
    assert world.consumed() == [("acme", 1)]  # ... and once for a consumer
    assert world.outbox == {}


async def test_dying_in_the_commit_leaves_nothing_to_send_again() -> None:
    world = World("commit")
    with pytest.raises(Crash):
        await world.delivery().deliver(outcome(), OFFSETS)
    assert world.committed == []  # the batch is read again (its events fenced off) ...
    assert world.outbox == {}  # ... and its alert, cleared already, is not sent again
    await world.delivery().resend({0})
    assert world.published == [outcome().alerts[0][1]]


async def test_a_failed_step_is_retried_alone_once_the_ones_before_it_succeeded() -> None:
    world = World("durable", "publish", "publish", "clear", "commit")
    await world.delivery(retry=retry_until_done).deliver(outcome(), OFFSETS)
    assert world.steps == [
        "save",
        "durable",
        "save",
        "durable",
        "publish",
        "publish",
        "publish",
        "clear",
        "clear",
        "commit",
        "commit",
    ]
    assert world.consumed() == [("acme", 1)]
    assert world.committed == [OFFSETS]


async def test_resending_waits_for_durability_before_publishing_and_commits_nothing() -> None:
    world = World()
    await world.delivery().save(outcome())
    world.steps.clear()
    await world.delivery().resend({0, 1})
    assert world.steps == ["unsent", "durable", "publish", "clear"]
    assert world.committed == []


async def test_nothing_is_committed_without_a_committer() -> None:
    world = World()
    await world.delivery(commit=False).deliver(outcome(), OFFSETS)
    assert world.steps == ["save", "durable", "publish", "clear"]
    assert world.committed == []
