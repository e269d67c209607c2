"""The bound on distinct members: which members of a batch's sum are kept. Pure."""

from __future__ import annotations

from worker.windows.distinct import admit
from worker.windows.plan import Totals


def _totals(users: dict[str, float], features: dict[str, float] | None = None) -> Totals:
    members = {"users": users}
    if features is not None:
        members["features"] = features
    return Totals({(1, "login"): 1.0}, members)


def test_with_room_for_every_member_the_sum_is_unchanged() -> None:
    totals = _totals({"a": 1.0, "b": 2.0})
    assert admit(totals, {"users": {"c": 0.0}, "features": {}}, 3) is totals


def test_tracked_members_stay_and_new_ones_fill_the_room_in_order() -> None:
    totals = _totals({"x": 5.0, "old": 6.0, "y": 7.0, "z": 9.0, "w": 3.0}, {"f": 1.0})
    held = {"users": {"old": 1.0, "older": 0.5}, "features": {}}
    got = admit(totals, held, 3)
    assert got.members == {"users": {"x": 5.0, "old": 6.0}, "features": {"f": 1.0}}
    assert got.counters == totals.counters
    assert got.dropped == {"users": (3, 9.0)}  # y, z, w; z the latest
    assert totals.members["users"] == {"x": 5.0, "old": 6.0, "y": 7.0, "z": 9.0, "w": 3.0}


def test_a_full_set_takes_no_new_member_but_refreshes_its_own() -> None:
    held = {"users": {"a": 1.0, "b": 1.0}, "features": {}}
    got = admit(_totals({"b": 8.0, "c": 9.0}), held, 2)
    assert got.members == {"users": {"b": 8.0}}
    assert got.dropped == {"users": (1, 9.0)}
