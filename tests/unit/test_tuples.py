"""The named tuples the hot path builds with ``tuples.make`` (values in field order, no
defaults filled in): each has every field of its class, each where its name says."""

from __future__ import annotations

from typing import Any, NamedTuple

from worker.scoring.mode import Mode
from worker.scoring.signals import WindowView
from worker.windows.plan import AccountPlan, Totals
from worker.windows.resident import load
from worker.windows.state import AccountState, state_of

DAY = 86400
NOW_BUCKET = 20_000


def _whole(record: NamedTuple, cls: type[Any], **expected: Any) -> None:
    assert type(record) is cls
    assert len(record) == len(cls._fields)
    assert record == cls(**record._asdict())
    for name, value in expected.items():
        assert getattr(record, name) == value, name


def _resident() -> Any:
    counters = [(f"{NOW_BUCKET}|logins".encode(), b"3")]
    members = [[(b"export", float(NOW_BUCKET * DAY))], []]
    return load(
        "acme",
        NOW_BUCKET,
        NOW_BUCKET - 89,
        (30, 90),
        DAY,
        counters,
        members,
        [b"7", *[None] * 9],
        ("features", "users"),
        ("login", "feature_use", "ticket", "survey"),
    )


def test_an_account_state_has_every_field_in_place() -> None:
    resident = _resident()
    resident.mode = Mode.CATCH_UP
    state = state_of(resident, "aar", False, DAY, {"users": (2, 1.0)})
    _whole(
        state,
        AccountState,
        account_id="acme",
        now_bucket=NOW_BUCKET,
        cache_valid=False,
        status="aar",
        applied=2,
        replayed=1,
        duplicates=0,
        last_mode=Mode.CATCH_UP,
        left_out={"users": 2},
        attrs={},
        cached_values={},
        peer_group=None,
    )


def test_a_window_view_has_every_field_in_place() -> None:
    view = _resident().view()
    for w, window in view.items():
        _whole(
            window,
            WindowView,
            sums={"logins": 3.0},
            counts={"features": 1, "users": 0},
            capped=frozenset(),
            end=(NOW_BUCKET + 1) * DAY,
        )
        assert w in (30, 90)


def test_a_plans_totals_have_every_field_in_place() -> None:
    plan = AccountPlan("acme", 3)
    _whole(plan.totals(), Totals, counters={}, members={}, dropped=None)
    _whole(plan.totals("a"), Totals, counters={}, members={}, dropped=None)
