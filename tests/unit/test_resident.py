"""Accounts held in memory: loading from Redis' replies, adding applied events, and
the bounded set of them. Pure: the replies are plain data here."""

from __future__ import annotations

import orjson
import pytest

from worker.scoring.mode import Mode
from worker.scoring.tierchange import Published
from worker.windows.plan import Totals
from worker.windows.resident import NO_CHANGE, UNKNOWN, Resident, Residents, load

DAY = 86400
NOW_BUCKET = 20_000
WINDOWS = (30, 90)
KEEP_FROM = NOW_BUCKET - 90 + 1
SETS = ("features", "users")
SEEN_TYPES = ("login", "feature_use", "ticket", "survey")


def _load(
    counters: dict[str, float] | None = None,
    users: dict[str, float] | None = None,
    features: dict[str, float] | None = None,
    state: list[bytes | None] | None = None,
) -> Resident:
    return load(
        "acme",
        NOW_BUCKET,
        KEEP_FROM,
        WINDOWS,
        DAY,
        [(k.encode(), str(v).encode()) for k, v in (counters or {}).items()],
        [
            [(m.encode(), ts) for m, ts in (features or {}).items()],
            [(m.encode(), ts) for m, ts in (users or {}).items()],
        ],
        state or [None] * 10,
        SETS,
        SEEN_TYPES,
    )


def _write(
    bucket: int,
    increments: tuple[tuple[str, float], ...] = (),
    distinct: tuple[tuple[str, str], ...] = (),
) -> Totals:
    """What one event at ``bucket`` adds."""
    counters: dict[tuple[int, str], float] = {}
    for counter, delta in increments:
        counters[(bucket, counter)] = counters.get((bucket, counter), 0.0) + delta
    members: dict[str, dict[str, float]] = {}
    for name, member in distinct:
        members.setdefault(name, {})[member] = bucket * DAY + 10
    return Totals(counters, members)


def test_an_account_redis_never_saw_is_empty() -> None:
    resident = _load()
    assert resident.version == 0
    assert resident.next_change == NO_CHANGE
    assert resident.published is None
    assert resident.mode is Mode.LIVE  # no mode saved: live (a live stream never writes one)
    assert resident.attrs == {}
    assert resident.seen == set()
    view = resident.view()
    assert set(view) == set(WINDOWS)
    assert all(
        v.sums == {} and v.distinct("users") == 0 and v.distinct("features") == 0
        for v in view.values()
    )


def test_counters_are_summed_per_window_and_expired_ones_listed() -> None:
    resident = _load(
        counters={
            f"{NOW_BUCKET}|login": 2,
            f"{NOW_BUCKET - 29}|login": 3,  # both windows
            f"{NOW_BUCKET - 30}|login": 5,  # the 90-day window only
            f"{NOW_BUCKET - 89}|tk_esc": 1,  # the oldest bucket still inside
            f"{NOW_BUCKET - 90}|tk_esc": 7,  # left every window
        }
    )
    view = resident.view()
    assert view[30].sums == {"login": 5.0}
    assert view[90].sums == {"login": 10.0, "tk_esc": 1.0}
    assert resident.expired == [f"{NOW_BUCKET - 90}|tk_esc"]
    # The 30-day window loses NOW-29 first: in bucket NOW-29+30 = NOW+1.
    assert resident.next_change == NOW_BUCKET + 1


def test_members_count_in_the_windows_their_last_seen_time_is_in() -> None:
    inside_both = (NOW_BUCKET - 3) * DAY
    inside_90 = (NOW_BUCKET - 40) * DAY
    gone = (KEEP_FROM - 1) * DAY
    resident = _load(
        users={"u1": inside_both, "u2": inside_90, "u3": gone}, features={"f1": inside_90 + 5}
    )
    view = resident.view()
    assert (view[30].distinct("users"), view[90].distinct("users")) == (1, 2)
    assert (view[30].distinct("features"), view[90].distinct("features")) == (0, 1)
    assert resident.last_seen["users"].keys() == {"u1", "u2"}
    assert resident.next_change == NOW_BUCKET - 3 + 30


def test_state_fields_are_read() -> None:
    published = {"tier": "green", "score": 80.0, "seq": 3, "components": {}}
    resident = _load(
        state=[
            b"7",
            orjson.dumps({"seats_purchased": 5}),
            orjson.dumps(published),
            b"catch_up",
            b"1",
            None,
            b"1",
            None,
            None,
            None,
            None,
        ]
    )
    assert resident.version == 7
    assert resident.mode is Mode.CATCH_UP
    assert resident.values is None  # component values are computed again after a load
    assert resident.scheduled is UNKNOWN  # and the due index written again
    assert resident.attrs == {"seats_purchased": 5}
    assert resident.published == Published("green", 80.0, 3, {})
    assert resident.seen == {"login", "ticket"}


def test_an_applied_event_adds_to_the_windows_that_hold_its_bucket() -> None:
    resident = _load()
    resident.add(_write(NOW_BUCKET - 40, (("login", 1.0), ("sess_sum", 60.0)), (("users", "u1"),)))
    resident.add(_write(NOW_BUCKET, (("login", 1.0),), (("users", "u1"), ("features", "f"))))
    view = resident.view()
    assert view[30].sums == {"login": 1.0}
    assert view[90].sums == {"login": 2.0, "sess_sum": 60.0}
    assert (view[30].distinct("users"), view[90].distinct("users")) == (1, 1)
    assert (view[30].distinct("features"), view[90].distinct("features")) == (1, 1)
    assert resident.next_change == NOW_BUCKET + 30  # the newest event, from the 30-day window


def test_a_late_event_never_moves_a_last_seen_time_back() -> None:
    resident = _load(users={"u1": (NOW_BUCKET - 2) * DAY})
    resident.add(_write(NOW_BUCKET - 50, (("login", 1.0),), (("users", "u1"),)))
    assert resident.last_seen["users"]["u1"] == (NOW_BUCKET - 2) * DAY
    assert resident.view()[90].distinct("users") == 1


def test_a_member_seen_again_enters_the_shorter_window_once() -> None:
    resident = _load(users={"u1": (NOW_BUCKET - 50) * DAY})
    assert resident.view()[30].distinct("users") == 0
    for _ in range(3):
        resident.add(_write(NOW_BUCKET, (("login", 1.0),), (("users", "u1"),)))
    assert (resident.view()[30].distinct("users"), resident.view()[90].distinct("users")) == (1, 1)


def test_an_event_that_writes_nothing_schedules_nothing() -> None:
    resident = _load()
    resident.add(_write(NOW_BUCKET - 5))
    assert resident.next_change == NO_CHANGE


def _resident(account: str, partition: int | None = None, bucket: int = NOW_BUCKET) -> Resident:
    return Resident(account, bucket, WINDOWS, DAY, partition=partition)


def test_residents_drop_the_least_recently_used_past_capacity() -> None:
    held = Residents(capacity=2)
    held.put(_resident("a"))
    held.put(_resident("b"))
    assert held.get("a", NOW_BUCKET) is not None  # now "b" is the least recently used
    held.put(_resident("c"))
    assert len(held) == 2
    assert held.peek("b") is None
    assert held.peek("a") is not None
    assert held.peek("c") is not None


def test_a_resident_of_an_earlier_bucket_is_not_current() -> None:
    held = Residents(capacity=10)
    held.put(_resident("a", bucket=NOW_BUCKET - 1))
    assert held.get("a", NOW_BUCKET) is None
    assert len(held) == 0


@pytest.mark.parametrize(
    ("gone", "left"), [({1}, {"b", "none"}), ({1, 2}, {"none"}), (set(), {"a", "b", "none"})]
)
def test_residents_of_partitions_that_moved_away_are_dropped(
    gone: set[int], left: set[str]
) -> None:
    held = Residents(capacity=10)
    for account, partition in (("a", 1), ("b", 2), ("none", None)):
        held.put(_resident(account, partition))
    held.drop_partitions(gone)
    assert {a for a in ("a", "b", "none") if held.peek(a) is not None} == left
