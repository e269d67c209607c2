"""Which alerts are batched to a partition and which are keyed sends."""

from __future__ import annotations

from worker.alerts import Alert, AlertModel, Cause, to_json
from worker.rescore import Outcome
from worker.runtime.publish import _split
from worker.windows.outbox import OutboxEntry


def _alert(account: str) -> Alert:
    return Alert(
        "id",
        account,
        None,
        None,
        "green",
        "G",
        None,
        90.0,
        None,
        {},
        Cause("event"),
        "live",
        "m",
        AlertModel("m", "default"),
        "2026-01-15T12:00:00.000+00:00",
        1,
    )


def _outcome(partitions: list[int | None]) -> Outcome:
    accounts = [f"a{i}" for i in range(len(partitions))]
    return Outcome(
        alerts=[(a, _alert(a)) for a in accounts],
        outbox=[OutboxEntry(p, a, 1) for p, a in zip(partitions, accounts, strict=True)],
    )


def test_co_partitioned_alerts_are_batched_by_their_entry_partition() -> None:
    batched, keyed = _split(_outcome([2, 0, 2, None]), co_partitioned=True)
    assert {p: [k for k, _ in records] for p, records in batched.items()} == {
        2: [b"a0", b"a2"],
        0: [b"a1"],
    }
    assert keyed == [(b"a3", to_json(_alert("a3")))]


def test_without_co_partitioning_every_alert_is_a_keyed_send() -> None:
    batched, keyed = _split(_outcome([2, 0]), co_partitioned=False)
    assert batched == {}
    assert [k for k, _ in keyed] == [b"a0", b"a1"]


def test_alerts_without_outbox_entries_are_keyed_sends() -> None:
    outcome = Outcome(alerts=[("a0", _alert("a0"))])
    batched, keyed = _split(outcome, co_partitioned=True)
    assert batched == {}
    assert [k for k, _ in keyed] == [b"a0"]
