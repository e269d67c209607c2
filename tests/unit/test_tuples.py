"""The named tuples the hot path builds with ``tuples.make`` (values in field order, no
defaults filled in): each has every field of its class, each where its name says. (An
OutboxEntry, three fields, is checked by every outbox test that reads one back.)"""

from __future__ import annotations

from typing import Any, NamedTuple

from worker.alerts import (
    WINDOW_EXPIRY,
    Alert,
    AlertComponent,
    AlertModel,
    TriggeringComponent,
    build_alert,
)
from worker.modelfile import load_model
from worker.scoring.attribution import ComponentChange
from worker.scoring.mode import Mode
from worker.scoring.rollup import ComponentScore, rounded, score_components
from worker.scoring.signals import WindowView
from worker.scoring.tierchange import Published, TierChange, decide, scorecard_of, snapshot
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


def test_a_tier_change_and_its_alert_have_every_field_in_place() -> None:
    model = load_model(None)
    low = {c.name: 0.0 for c in model.components}
    first = decide(model, score_components(model, low), None)
    assert first is not None
    published = snapshot(first)
    _whole(published, Published, tier=first.tier, seq=1, model=None, ovr=None)
    high = {**low, model.components[0].name: 1e9}
    change = decide(model, score_components(model, high), published, hysteresis=False)
    assert change is not None
    _whole(change, TierChange, previous_tier=first.tier, seq=2, previous_score=first.score)
    for card in (change.scorecard, scorecard_of(published)):
        for score in card.components.values():
            _whole(score, ComponentScore)
            assert score.weight > 0
    for name, moved in change.changes.items():
        _whole(moved, ComponentChange, name=name)
    assert change.trigger is not None
    assert change.trigger.name == model.components[0].name

    alert = build_alert(model, "acme", None, change, WINDOW_EXPIRY, 0.0, mode=Mode.LIVE)
    _whole(
        alert,
        Alert,
        account_id="acme",
        segment=None,
        previous_tier=first.tier,
        tier=change.tier,
        tier_label=model.tier(change.tier).label,
        score=rounded(change.score),
        cause=WINDOW_EXPIRY,
        delivery="live",
        model_version=model.version,
        ts="1970-01-01T00:00:00.000+00:00",
        seq=2,
        override=None,
    )
    _whole(alert.model, AlertModel, version=model.version, segment="default")
    assert alert.triggering_component is not None
    _whole(alert.triggering_component, TriggeringComponent, name=change.trigger.name)
    assert alert.triggering_component.weight == model.components[0].weight
    for name, component in alert.components.items():
        _whole(component, AlertComponent, weight=change.scorecard.components[name].weight)
