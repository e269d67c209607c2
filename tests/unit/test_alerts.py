"""Tier-change alerts: the record published on the alerts topic."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from worker.alerts import WINDOW_EXPIRY, Cause, alert_id, as_dict
from worker.alerts import build_alert as build
from worker.contracts import validator
from worker.events.types import AccountUpdate, Event, SourceRef
from worker.scoring.attribution import ComponentChange
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.rollup import ComponentScore, Scorecard, score_components
from worker.scoring.tierchange import TierChange, decide, snapshot
from worker.timefmt import rfc3339
from worker.windows import published as published_tier

NOW = 1768478400.0  # 2026-01-15T12:00:00Z
EVENT = Event("ticket", "evt-7", "acme", NOW, {}, SourceRef("events.ticket", 3, 99))
UPDATE = AccountUpdate("acme", {"seats_purchased": 5}, SourceRef("accounts", 1, 12))

GREEN: dict[str, float] = {"login_frequency": 20, "escalations": 0, "nps": 50}
RED: dict[str, float] = {"login_frequency": 18, "escalations": 2, "csat": 2.5}


def build_alert(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The alert as consumers read it: through its JSON."""
    return as_dict(build(*args, **kwargs))


def schema_errors(alert: dict[str, Any]) -> list[str]:
    # Through JSON first, as consumers see it.
    wire = orjson.loads(orjson.dumps(alert))
    return [f"{list(e.instance_path)}: {e.message}" for e in validator("alert").iter_errors(wire)]


def first(model: Model, vals: Mapping[str, float]) -> TierChange:
    change = decide(model, score_components(model, vals), None)
    assert change is not None
    return change


def then(model: Model, before: TierChange, vals: Mapping[str, float]) -> TierChange:
    published = published_tier.decode(published_tier.encode(snapshot(before)))
    change = decide(model, score_components(model, vals), published)
    assert change is not None
    return change


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize("cause", [Cause.of(EVENT), Cause.of(UPDATE), Cause("window_expiry")])
@pytest.mark.parametrize("segment", ["enterprise", None])
def test_first_alert_validates(model: Model, cause: Cause, segment: str | None) -> None:
    alert = build_alert(model, "acme", segment, first(model, GREEN), cause, NOW, mode=Mode.LIVE)
    assert schema_errors(alert) == []


def test_tier_change_alert_validates(model: Model) -> None:
    change = then(model, first(model, GREEN), RED)
    alert = build_alert(model, "acme", "smb", change, Cause.of(EVENT), NOW, mode=Mode.LIVE)
    assert schema_errors(alert) == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (GREEN, RED),  # nps vanished, csat appeared
        ({"escalations": 0}, {"escalations": 0, "support_tickets": 8}),  # a new 0 drags down
        ({"escalations": 2, "nps": -20}, {"escalations": 2, "nps": 50, "csat": 4.5}),
        ({"escalations": 0, "csat": 2.5}, {"escalations": 0}),  # the low one vanished
        ({"login_frequency": 4}, {"login_frequency": 20}),
    ],
)
def test_every_kind_of_trigger_validates(
    model: Model, before: dict[str, float], after: dict[str, float]
) -> None:
    change = then(model, first(model, before), after)
    alert = build_alert(model, "acme", None, change, Cause.of(EVENT), NOW, mode=Mode.LIVE)
    assert schema_errors(alert) == []


def test_alert_without_trigger_validates(model: Model) -> None:
    card = score_components(model, GREEN)
    assert card.score is not None
    change = TierChange(None, "green", None, card.score, 1, card, {}, None)
    alert = build_alert(model, "acme", None, change, Cause("window_expiry"), NOW, mode=Mode.LIVE)
    assert alert["triggering_component"] is None
    assert schema_errors(alert) == []


def test_extreme_scores_validate(model: Model) -> None:
    for vals in ({"escalations": 0}, {"escalations": 5}):
        alert = build_alert(
            model, "acme", None, first(model, vals), Cause.of(EVENT), NOW, mode=Mode.LIVE
        )
        assert alert["score"] in (0.0, 100.0)
        assert schema_errors(alert) == []


# --------------------------------------------------------------------------- alert_id


def test_alert_id_is_deterministic_hex() -> None:
    assert alert_id("acme", 3, "green", "red") == alert_id("acme", 3, "green", "red")
    assert re.fullmatch(r"[0-9a-f]{32}", alert_id("acme", 3, None, "green"))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("acme", 1, None, "green"), ("acme", 2, None, "green")),
        (("acme", 1, None, "green"), ("globex", 1, None, "green")),
        (("acme", 11, None, "green"), ("acme1", 1, None, "green")),  # no concatenation ambiguity
        (("a", 12, None, "red"), ("a1", 2, None, "red")),
        # After a lost state the seq restarts; a different change must not reuse an id.
        (("acme", 2, "green", "red"), ("acme", 2, "yellow", "red")),
        (("acme", 2, "green", "red"), ("acme", 2, "green", "yellow")),
    ],
)
def test_alert_id_differs(
    a: tuple[str, int, str | None, str], b: tuple[str, int, str | None, str]
) -> None:
    assert alert_id(*a) != alert_id(*b)


def test_alert_ids_of_many_seqs_are_unique() -> None:
    ids = {
        alert_id(account, seq, "green", "red")
        for account in ("a", "b", "c")
        for seq in range(1, 500)
    }
    assert len(ids) == 3 * 499


def test_republished_alert_has_the_same_id(model: Model) -> None:
    change = first(model, GREEN)
    one = build_alert(model, "acme", None, change, Cause.of(EVENT), NOW, mode=Mode.LIVE)
    two = build_alert(model, "acme", None, change, Cause.of(UPDATE), NOW + 60, mode=Mode.LIVE)
    assert one["alert_id"] == two["alert_id"] == alert_id("acme", 1, None, "green")


# --------------------------------------------------------------------------- fields


def test_first_alert_fields(model: Model) -> None:
    change = first(model, GREEN)
    alert = build_alert(model, "acme", "enterprise", change, Cause.of(EVENT), NOW, mode=Mode.LIVE)
    assert alert["account_id"] == "acme"
    assert alert["segment"] == "enterprise"
    assert alert["previous_tier"] is None
    assert alert["previous_score"] is None
    assert alert["tier"] == "green"
    assert alert["tier_label"] == "Doing well"
    assert alert["score"] == 100.0
    assert alert["seq"] == 1
    assert alert["model_version"] == model.version
    assert alert["ts"] == rfc3339(NOW) == "2026-01-15T12:00:00.000+00:00"
    assert alert["cause"] == {
        "kind": "event",
        "event_id": "evt-7",
        "event_type": "ticket",
        "topic": "events.ticket",
        "partition": 3,
        "offset": 99,
    }


@pytest.mark.parametrize(
    ("tier", "label"),
    [("green", "Doing well"), ("yellow", "Take notice"), ("red", "Requires attention")],
)
def test_tier_labels(model: Model, tier: str, label: str) -> None:
    vals: dict[str, dict[str, float]] = {
        "green": GREEN,
        "yellow": {"login_frequency": 12, "escalations": 1},
        "red": RED,
    }
    alert = build_alert(
        model, "acme", None, first(model, vals[tier]), Cause.of(EVENT), NOW, mode=Mode.LIVE
    )
    assert (alert["tier"], alert["tier_label"]) == (tier, label)


def test_components_carry_rounded_subscores_and_contributions(model: Model) -> None:
    vals = {"login_frequency": 9, "escalations": 1, "csat": 3.3}
    change = first(model, vals)
    alert = build_alert(model, "acme", None, change, Cause.of(EVENT), NOW, mode=Mode.LIVE)
    assert list(alert["components"]) == ["login_frequency", "escalations", "csat"]
    login = alert["components"]["login_frequency"]
    assert login == {
        "subscore": 31.25,
        "value": 9,
        "weight": 1.0,
        "contribution": round(31.25 / 3.1, 2),
    }
    total = sum(c["contribution"] for c in alert["components"].values())
    assert total == pytest.approx(alert["score"], abs=0.02)
    for c in alert["components"].values():
        assert c["subscore"] == round(c["subscore"], 2)


def test_scores_are_rounded_to_two_decimals(model: Model) -> None:
    before = first(model, {"login_frequency": 20, "escalations": 1})  # 66.666...
    change = then(model, before, {"login_frequency": 5, "escalations": 2})
    alert = build_alert(model, "acme", None, change, Cause.of(EVENT), NOW, mode=Mode.LIVE)
    assert before.tier == "yellow"
    assert alert["previous_score"] == 66.67
    assert alert["score"] == round(100 / 16 / 2.25, 2) == 2.78


def test_triggering_component_of_a_drop(model: Model) -> None:
    before = first(model, {"login_frequency": 20, "escalations": 0})
    change = then(model, before, {"login_frequency": 10, "escalations": 2})
    alert = build_alert(model, "acme", None, change, Cause.of(EVENT), NOW, mode=Mode.LIVE)
    assert (alert["previous_tier"], alert["tier"], alert["seq"]) == ("green", "red", 2)
    assert alert["triggering_component"] == {
        "name": "escalations",
        "previous_subscore": 100.0,
        "subscore": 0.0,
        "previous_value": 0,
        "value": 2,
        "weight": 1.25,
        "contribution_change": round(-100 * 1.25 / 2.25, 2),
    }


def test_triggering_component_that_appeared(model: Model) -> None:
    before = first(model, {"login_frequency": 20})
    change = then(model, before, {"login_frequency": 20, "escalations": 2})
    alert = build_alert(model, "acme", None, change, Cause.of(EVENT), NOW, mode=Mode.LIVE)
    trigger = alert["triggering_component"]
    assert trigger["name"] == "escalations"
    assert trigger["previous_subscore"] is None
    assert trigger["previous_value"] is None
    assert trigger["subscore"] == 0.0
    assert trigger["value"] == 2
    assert trigger["weight"] == 1.25


def test_triggering_component_that_vanished(model: Model) -> None:
    before = first(model, {"escalations": 2, "nps": -20, "csat": 4.5})  # red
    change = then(model, before, {"escalations": 0, "nps": -20})
    # escalations rose to 100 and explains most of the rise; force the vanished one:
    vanished = change.changes["csat"]
    assert vanished.current is None
    forced = TierChange(
        change.previous_tier,
        change.tier,
        change.previous_score,
        change.score,
        change.seq,
        change.scorecard,
        change.changes,
        vanished,
    )
    alert = build_alert(model, "acme", None, forced, Cause.of(EVENT), NOW, mode=Mode.LIVE)
    trigger = alert["triggering_component"]
    assert trigger["name"] == "csat"
    assert trigger["subscore"] is None
    assert trigger["value"] is None
    assert trigger["previous_subscore"] == 100.0
    assert trigger["previous_value"] == 4.5
    assert trigger["weight"] == 0.85


def test_contribution_changes_add_up_to_the_score_change(model: Model) -> None:
    change = then(model, first(model, GREEN), RED)
    assert change.previous_score is not None
    total = sum(c.contribution_change for c in change.changes.values())
    assert total == pytest.approx(change.score - change.previous_score)


def test_trigger_is_taken_from_the_change(model: Model) -> None:
    card = Scorecard({"nps": ComponentScore(10, 42.857, 0.85)})
    trigger = ComponentChange(
        "nps", ComponentScore(40, 85.714, 0.85), card.components["nps"], -42.857142
    )
    change = TierChange("green", "yellow", 85.714, 42.857, 4, card, {"nps": trigger}, trigger)
    alert = build_alert(model, "acme", None, change, Cause.of(UPDATE), NOW, mode=Mode.LIVE)
    assert alert["triggering_component"]["contribution_change"] == -42.86
    assert alert["triggering_component"]["previous_subscore"] == 85.71
    assert alert["seq"] == 4
    assert schema_errors(alert) == []


# --------------------------------------------------------------------------- causes


def test_cause_of_an_event() -> None:
    assert Cause.of(EVENT) == Cause("event", "evt-7", "ticket", "events.ticket", 3, 99)


def test_cause_of_an_account_update() -> None:
    assert Cause.of(UPDATE).as_dict() == {
        "kind": "account_update",
        "event_id": None,
        "event_type": None,
        "topic": "accounts",
        "partition": 1,
        "offset": 12,
    }


def test_window_expiry_cause_has_no_source() -> None:
    assert Cause("window_expiry").as_dict() == {
        "kind": "window_expiry",
        "event_id": None,
        "event_type": None,
        "topic": None,
        "partition": None,
        "offset": None,
    }


# --------------------------------------------------------------------------- delivery


@pytest.mark.parametrize(("mode", "delivery"), [(Mode.LIVE, "live"), (Mode.CATCH_UP, "catch_up")])
@pytest.mark.parametrize("cause", [Cause.of(EVENT), Cause.of(UPDATE), WINDOW_EXPIRY])
def test_delivery_is_the_mode_of_the_evaluation(
    model: Model, mode: Mode, delivery: str, cause: Cause
) -> None:
    for change in (first(model, GREEN), then(model, first(model, GREEN), RED)):
        alert = build_alert(model, "acme", None, change, cause, NOW, mode=mode)
        assert alert["delivery"] == delivery
        assert schema_errors(alert) == []


def test_an_alert_as_written_must_say_its_delivery(model: Model) -> None:
    alert = build_alert(
        model, "acme", None, first(model, GREEN), Cause.of(EVENT), NOW, mode=Mode.LIVE
    )
    assert schema_errors({**alert, "delivery": "late"}) != []
    del alert["delivery"]
    assert schema_errors(alert) != []
