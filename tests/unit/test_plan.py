"""The planner: what one batch writes to one account's windows, and what it touches."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.events.types import AccountUpdate, Event, SourceRef
from worker.scoring.model import Model
from worker.windows.buckets import bucket_of, oldest_bucket, state_ttl_seconds
from worker.windows.plan import AccountPlan, Planner, Totals

DAY = 86400
NOW = 1768478400.0  # 2026-01-15T12:00:00Z
TODAY = bucket_of(NOW, DAY)
SRC = SourceRef("t", 0, 0)
_ids = itertools.count()


def ev(event_type: str, ts: float = NOW, **fields: Any) -> Event:
    defaults: dict[str, dict[str, Any]] = {
        "login": {"user_id": "u1"},
        "feature_use": {"user_id": "u1", "feature": "reports"},
        "ticket": {"ticket_id": "T1", "status": "opened", "priority": "normal"},
        "survey": {"kind": "nps", "score": 9},
    }
    body = {"event_id": f"e{next(_ids)}", "account_id": "acme", "ts": "..."}
    body |= defaults[event_type] | fields
    return Event(event_type, body["event_id"], "acme", ts, body, SRC)


def days_ago(n: float) -> float:
    return NOW - n * DAY


@pytest.fixture(scope="module")
def planner(model: Model) -> Planner:
    return Planner(model)


def plan_of(planner: Planner, *records: Event | AccountUpdate) -> AccountPlan:
    return planner.plan("acme", records, TODAY)


# --------------------------------------------------------------------------- buckets


@pytest.mark.parametrize(
    ("ts", "bucket"),
    [(0, 0), (DAY - 0.001, 0), (DAY, 1), (-1, -1), (NOW, 20468), (days_ago(3), 20465)],
)
def test_bucket_of(ts: float, bucket: int) -> None:
    assert bucket_of(ts, DAY) == bucket


def test_window_bounds_and_ttl() -> None:
    assert oldest_bucket(100, 1) == 100  # a one-bucket window is the current bucket
    assert oldest_bucket(100, 30) == 71
    assert state_ttl_seconds(90, DAY) == 91 * DAY


# --------------------------------------------------------------------------- counters


def test_empty_batch_plans_nothing(planner: Planner) -> None:
    assert plan_of(planner) == AccountPlan("acme")


def test_logins_count_in_the_bucket_of_their_own_ts(planner: Planner) -> None:
    plan = plan_of(planner, ev("login"), ev("login"), ev("login", days_ago(3)))
    assert plan.totals().counters == {(TODAY, "login"): 2.0, (TODAY - 3, "login"): 1.0}


def test_late_events_land_in_their_bucket_not_today(planner: Planner) -> None:
    plan = plan_of(planner, ev("ticket", days_ago(40), status="escalated"))
    assert plan.totals().counters == {(TODAY - 40, "tk_esc"): 1.0}
    assert plan.too_old == 0


def test_events_ahead_of_the_clock_land_in_their_future_bucket(planner: Planner) -> None:
    plan = plan_of(planner, ev("login", NOW + DAY))
    assert plan.totals().counters == {(TODAY + 1, "login"): 1.0}


@pytest.mark.parametrize(
    ("age_days", "kept"),
    [(0, True), (89, True), (89.4, True), (90, False), (91, False), (3650, False)],
)
def test_events_older_than_the_longest_window_are_dropped(
    planner: Planner, age_days: float, kept: bool
) -> None:
    # Today is bucket 0 of the 90-day window, so 89 full days back is its oldest bucket.
    plan = plan_of(planner, ev("ticket", days_ago(age_days), status="escalated"))
    assert plan.too_old == (0 if kept else 1)
    assert bool(plan.totals().counters) is kept
    assert bool(plan.seen) is kept
    assert bool(plan.touched) is kept


def test_too_old_events_leave_no_trace(planner: Planner) -> None:
    plan = plan_of(planner, ev("feature_use", days_ago(200)), ev("login", days_ago(100)))
    assert plan.too_old == 2
    assert plan == AccountPlan("acme", partition=plan.partition, too_old=2)


def test_too_old_depends_on_the_longest_window_of_the_model(
    raw_model: dict[str, Any], model_of: Callable[[dict[str, Any]], Model]
) -> None:
    for spec in raw_model["components"].values():
        spec["window"] = "7d"
    planner = Planner(model_of(raw_model))
    plan = plan_of(planner, ev("login", days_ago(6)), ev("login", days_ago(7)))
    assert plan.too_old == 1
    assert plan.totals().counters == {(TODAY - 6, "login"): 1.0}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"login": 1.0}),
        ({"session_seconds": 600}, {"login": 1.0, "sess_n": 1.0, "sess_sum": 600.0}),
        ({"session_seconds": 0}, {"login": 1.0, "sess_n": 1.0, "sess_sum": 0.0}),
        ({"session_seconds": 12.5}, {"login": 1.0, "sess_n": 1.0, "sess_sum": 12.5}),
    ],
)
def test_session_counters_only_when_the_login_reports_one(
    planner: Planner, fields: dict[str, Any], expected: dict[str, float]
) -> None:
    plan = plan_of(planner, ev("login", **fields))
    assert plan.totals().counters == {(TODAY, c): v for c, v in expected.items()}


def test_sessions_add_up(planner: Planner) -> None:
    plan = plan_of(
        planner, ev("login", session_seconds=600), ev("login"), ev("login", session_seconds=300)
    )
    assert plan.totals().counters == {
        (TODAY, "login"): 3.0,
        (TODAY, "sess_n"): 2.0,
        (TODAY, "sess_sum"): 900.0,
    }


@pytest.mark.parametrize(
    ("score", "counters"),
    [
        (0, {"nps_n": 1.0, "nps_det": 1.0}),
        (3, {"nps_n": 1.0, "nps_det": 1.0}),
        (6, {"nps_n": 1.0, "nps_det": 1.0}),
        (7, {"nps_n": 1.0}),  # passive: counted in the total only
        (8, {"nps_n": 1.0}),
        (9, {"nps_n": 1.0, "nps_pro": 1.0}),
        (10, {"nps_n": 1.0, "nps_pro": 1.0}),
    ],
)
def test_nps_promoters_detractors_passives(
    planner: Planner, score: int, counters: dict[str, float]
) -> None:
    plan = plan_of(planner, ev("survey", kind="nps", score=score))
    assert plan.totals().counters == {(TODAY, c): v for c, v in counters.items()}


def test_nps_mix(planner: Planner) -> None:
    scores = [10, 9, 8, 7, 6, 0, 10]
    plan = plan_of(planner, *(ev("survey", kind="nps", score=s) for s in scores))
    assert plan.totals().counters == {
        (TODAY, "nps_n"): 7.0,
        (TODAY, "nps_pro"): 3.0,
        (TODAY, "nps_det"): 2.0,
    }


def test_csat_counts_and_sums(planner: Planner) -> None:
    plan = plan_of(
        planner,
        *(ev("survey", kind="csat", score=s) for s in (5, 3, 1)),
        ev("survey", days_ago(1), kind="csat", score=4),
    )
    assert plan.totals().counters == {
        (TODAY, "csat_n"): 3.0,
        (TODAY, "csat_sum"): 9.0,
        (TODAY - 1, "csat_n"): 1.0,
        (TODAY - 1, "csat_sum"): 4.0,
    }


@pytest.mark.parametrize(
    ("status", "counter"),
    [("opened", "tk_open"), ("reopened", "tk_reopen"), ("escalated", "tk_esc")],
)
def test_ticket_counters(planner: Planner, status: str, counter: str) -> None:
    assert plan_of(planner, ev("ticket", status=status)).totals().counters == {
        (TODAY, counter): 1.0
    }


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_ticket_counters_the_model_does_not_read_are_not_written(
    planner: Planner, status: str
) -> None:
    plan = plan_of(planner, ev("ticket", status=status))
    assert plan.totals().counters == {}
    assert plan.seen == {"ticket"}  # the account did send tickets, though


def test_feature_use_count_is_not_written_by_the_default_model(planner: Planner) -> None:
    # No default signal reads the "feat" counter; features count as a distinct set.
    plan = plan_of(planner, ev("feature_use", count=5))
    assert plan.totals().counters == {}
    assert plan.totals().members == {"users": {"u1": NOW}, "features": {"reports": NOW}}


def test_counters_of_components_not_in_the_model_are_not_written(
    raw_model: dict[str, Any], model_of: Callable[[dict[str, Any]], Model]
) -> None:
    raw_model["components"] = {"nps": raw_model["components"]["nps"]}
    planner = Planner(model_of(raw_model))
    plan = plan_of(
        planner,
        ev("login", session_seconds=60),
        ev("feature_use"),
        ev("ticket"),
        ev("survey", kind="csat", score=5),
        ev("survey", kind="nps", score=10),
    )
    assert plan.totals().counters == {(TODAY, "nps_n"): 1.0, (TODAY, "nps_pro"): 1.0}
    assert plan.totals().members == {}
    assert plan.touched == {"nps"}


# --------------------------------------------------------------------------- distinct sets


def test_distinct_users_and_features_keep_the_latest_ts(planner: Planner) -> None:
    plan = plan_of(
        planner,
        ev("login", days_ago(1), user_id="ann"),
        ev("login", days_ago(5), user_id="ann"),  # late: older than what we have
        ev("feature_use", days_ago(2), user_id="bob", feature="export"),
        ev("feature_use", days_ago(3), user_id="bob", feature="export"),
        ev("feature_use", days_ago(0.5), user_id="cy", feature="reports"),
    )
    assert plan.totals().members == {
        "users": {"ann": days_ago(1), "bob": days_ago(2), "cy": days_ago(0.5)},
        "features": {"export": days_ago(2), "reports": days_ago(0.5)},
    }


def test_distinct_keeps_max_ts_whatever_the_order(planner: Planner) -> None:
    stamps = [days_ago(d) for d in (3, 1, 7, 2)]
    for order in itertools.permutations(stamps):
        plan = plan_of(planner, *(ev("login", ts) for ts in order))
        assert plan.totals().members == {"users": {"u1": days_ago(1)}}


@pytest.mark.parametrize("event_type", ["ticket", "survey"])
def test_only_usage_events_feed_the_distinct_sets(planner: Planner, event_type: str) -> None:
    plan = plan_of(planner, ev(event_type, user_id="someone"))
    assert plan.totals().members == {}


def test_too_old_events_do_not_refresh_distinct_members(planner: Planner) -> None:
    plan = plan_of(planner, ev("login", days_ago(1)), ev("login", days_ago(120)))
    assert plan.totals().members == {"users": {"u1": days_ago(1)}}


# --------------------------------------------------------------------------- touched, seen, attrs


@pytest.mark.parametrize(
    ("event", "touched"),
    [
        (ev("login"), {"login_frequency", "session_duration", "license_utilization"}),
        (ev("feature_use"), {"login_frequency", "feature_adoption", "license_utilization"}),
        (ev("ticket"), {"support_tickets", "escalations"}),
        (ev("ticket", status="closed"), {"support_tickets", "escalations"}),
        (ev("survey"), {"nps", "csat"}),
        (ev("survey", kind="csat", score=2), {"nps", "csat"}),
    ],
)
def test_components_touched_by_each_event_type(
    planner: Planner, event: Event, touched: set[str]
) -> None:
    plan = plan_of(planner, event)
    assert plan.touched == touched
    assert plan.seen == {event.type}


def test_touched_and_seen_accumulate_over_the_batch(planner: Planner) -> None:
    plan = plan_of(planner, ev("ticket"), ev("survey"), ev("ticket"))
    assert plan.touched == {"support_tickets", "escalations", "nps", "csat"}
    assert plan.seen == {"ticket", "survey"}


def test_account_update_touches_license_utilization_only(planner: Planner) -> None:
    attrs = {"account_id": "acme", "segment": "smb", "seats_purchased": 10}
    plan = plan_of(planner, AccountUpdate("acme", attrs, SRC))
    assert plan.touched == {"license_utilization"}
    assert plan.attrs == attrs
    assert plan.attrs_changed is True
    assert plan.seen == set()
    assert plan.totals().counters == {}


def test_tombstone_clears_the_attributes(planner: Planner) -> None:
    plan = plan_of(planner, AccountUpdate("acme", None, SRC))
    assert plan.attrs is None
    assert plan.attrs_changed is True
    assert plan.touched == {"license_utilization"}


def test_last_account_update_of_the_batch_wins(planner: Planner) -> None:
    first = {"account_id": "acme", "segment": "smb", "seats_purchased": 10}
    second = {"account_id": "acme", "segment": "smb", "seats_purchased": 25}
    assert (
        plan_of(
            planner, AccountUpdate("acme", first, SRC), AccountUpdate("acme", second, SRC)
        ).attrs
        == second
    )
    assert (
        plan_of(planner, AccountUpdate("acme", first, SRC), AccountUpdate("acme", None, SRC)).attrs
        is None
    )


def test_no_account_update_leaves_attributes_alone(planner: Planner) -> None:
    plan = plan_of(planner, ev("login"))
    assert plan.attrs is None
    assert plan.attrs_changed is False


def test_account_update_in_a_model_without_attribute_signals_touches_nothing(
    raw_model: dict[str, Any], model_of: Callable[[dict[str, Any]], Model]
) -> None:
    del raw_model["components"]["license_utilization"]
    planner = Planner(model_of(raw_model))
    plan = plan_of(planner, AccountUpdate("acme", {"seats_purchased": 3}, SRC))
    assert plan.touched == set()
    assert plan.attrs_changed is True


def test_plan_is_for_the_given_account(planner: Planner) -> None:
    assert planner.plan("globex", [], TODAY).account_id == "globex"


def test_a_mixed_batch(planner: Planner) -> None:
    plan = plan_of(
        planner,
        ev("login", session_seconds=1200, user_id="ann"),
        ev("feature_use", days_ago(2), user_id="bob", feature="export"),
        ev("ticket", days_ago(1), status="reopened"),
        ev("survey", days_ago(30), kind="nps", score=4),
        ev("login", days_ago(95)),
        AccountUpdate("acme", {"seats_purchased": 5}, SRC),
    )
    assert plan.totals().counters == {
        (TODAY, "login"): 1.0,
        (TODAY, "sess_n"): 1.0,
        (TODAY, "sess_sum"): 1200.0,
        (TODAY - 1, "tk_reopen"): 1.0,
        (TODAY - 30, "nps_n"): 1.0,
        (TODAY - 30, "nps_det"): 1.0,
    }
    assert plan.totals().members == {
        "users": {"ann": NOW, "bob": days_ago(2)},
        "features": {"export": days_ago(2)},
    }
    assert plan.seen == {"login", "feature_use", "ticket", "survey"}
    assert plan.too_old == 1
    assert plan.attrs == {"seats_purchased": 5}
    assert plan.touched == {
        "login_frequency",
        "feature_adoption",
        "session_duration",
        "license_utilization",
        "support_tickets",
        "escalations",
        "nps",
        "csat",
    }


# --------------------------------------------------------------------------- totals


def test_totals_cover_only_the_events_the_status_applies(planner: Planner) -> None:
    plan = plan_of(
        planner,
        ev("login", user_id="u1", session_seconds=60),
        ev("login", days_ago(1), user_id="u2", session_seconds=30),
        ev("login", user_id="u1", session_seconds=90),
    )
    assert plan.totals("ara") == Totals(
        {(TODAY, "login"): 2.0, (TODAY, "sess_n"): 2.0, (TODAY, "sess_sum"): 150.0},
        {"users": {"u1": NOW}},
    )
    assert plan.totals("rdr") == Totals({}, {})
    assert plan.totals() == plan.totals("aaa")
    assert plan.totals()[1] == {"users": {"u1": NOW, "u2": days_ago(1)}}


_any_event = st.builds(
    lambda kind, age, user, value: ev(
        kind,
        days_ago(age),
        user_id=user,
        **(
            {"session_seconds": value}
            if kind == "login"
            else {"kind": "csat", "score": int(value) % 6}
            if kind == "survey"
            else {}
        ),
    ),
    st.sampled_from(["login", "feature_use", "ticket", "survey"]),
    st.floats(0, 40),
    st.sampled_from(["u1", "u2", "u3"]),
    st.floats(0, 5000),
)


@given(events=st.lists(_any_event, max_size=12), letters=st.text("ard", min_size=12, max_size=12))
def test_totals_of_some_events_are_those_of_a_plan_of_them_alone(
    planner: Planner, events: list[Event], letters: str
) -> None:
    """Summed as planned (all of them) or again for a status (some of them), the same
    floats in the same order: a plan of only the applied events gives the same totals."""
    status = letters[: len(events)]
    applied = [e for e, letter in zip(events, status, strict=True) if letter == "a"]
    assert plan_of(planner, *events).totals(status) == plan_of(planner, *applied).totals()
    assert plan_of(planner, *events).totals() == plan_of(planner, *events).totals("a" * len(events))


def test_a_member_keeps_its_latest_time_whatever_the_order(planner: Planner) -> None:
    plan = plan_of(planner, ev("login", NOW, user_id="u1"), ev("login", days_ago(2), user_id="u1"))
    assert plan.totals().members == {"users": {"u1": NOW}}


def test_an_event_id_is_scoped_by_its_type(planner: Planner) -> None:
    """Producers keep ids unique per event type only: a ticket may reuse a login's id."""
    same_id = [ev(t, event_id="42") for t in ("login", "ticket")]
    events = plan_of(planner, *same_id, same_id[0]).events
    digests = [digest for _, _, digest, _ in events]
    assert digests[0] != digests[1]
    assert digests[0] == digests[2]
    assert [event.type for _, _, _, event in events] == ["login", "ticket", "login"]


def test_each_type_keeps_the_newest_bucket_of_its_events(planner: Planner, model: Model) -> None:
    plan = plan_of(
        planner,
        ev("ticket", days_ago(3)),
        ev("survey", days_ago(5)),
        ev("ticket", days_ago(1)),
        ev("ticket", days_ago(2)),
    )
    day = model.bucket_seconds
    assert plan.last_bucket == {
        "ticket": bucket_of(days_ago(1), day),
        "survey": bucket_of(days_ago(5), day),
    }


def test_seen_is_written_only_when_a_batch_moves_its_bucket(planner: Planner, model: Model) -> None:
    from worker.windows.resident import Resident
    from worker.windows.script import ApplyScript

    plan = plan_of(planner, ev("ticket", days_ago(1)), ev("survey", days_ago(1)))
    today = bucket_of(NOW, model.bucket_seconds)
    windows = tuple(sorted({c.window_buckets for c in model.components}))
    resident = Resident(
        "acme",
        today,
        windows,
        model.bucket_seconds,
        maintained=True,
        seen_bucket={"ticket": bucket_of(days_ago(1), model.bucket_seconds), "survey": 1},
    )  # 1: a flag of an older version
    call = ApplyScript(model, 86400, 100).call([plan], [resident], [None], [plan.totals()], NOW)
    args = list(call)  # event id digests are raw bytes
    assert "seen:ticket" not in args  # known already: nothing written
    at = args.index("seen:survey")
    assert args[at + 1] == bucket_of(days_ago(1), model.bucket_seconds)
