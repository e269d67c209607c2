"""What would bring an account back: every hint does what it says, and no less would."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from worker.alerts import Cause, alert_recovery, build_alert, from_json, to_json
from worker.modelfile import load_model, parse_model
from worker.recoveryview import change, in_users, print_recovery, summary
from worker.scoring import override
from worker.scoring.curves import Percentile
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.override import ActiveOverride
from worker.scoring.recovery import (
    ABOVE,
    AT_LEAST,
    AT_MOST,
    Hint,
    goal,
    lifted,
    recovery,
    score_with,
)
from worker.scoring.rollup import Scorecard, score_components
from worker.scoring.tierchange import decide

MODEL = load_model()
VALUES = {  # a plausible range per default component, past both ends of its curve
    "login_frequency": st.floats(0, 30),
    "feature_adoption": st.integers(0, 12).map(float),
    "session_duration": st.floats(0, 25),
    "license_utilization": st.floats(0, 1.2),
    "support_tickets": st.integers(0, 12).map(float),
    "escalations": st.integers(0, 4).map(float),
    "nps": st.floats(-100, 100),
    "csat": st.floats(1, 5),
}
cards = (
    st.fixed_dictionaries({}, optional=VALUES)
    .filter(bool)
    .map(lambda values: score_components(MODEL, values))
)


def with_value(card: Scorecard, hint: Hint, value: float) -> Scorecard:
    return lifted(MODEL, card, MODEL.component(hint.component), value)


def probe(hint: Hint) -> float:
    return math.nextafter(hint.target, math.inf) if hint.op == ABOVE else hint.target


def less(hint: Hint) -> float:
    """One step short of the target: one unit for a count, a millionth of the curve's
    span for a measure."""
    component = MODEL.component(hint.component)
    step = 1.0 if component.signal.whole else 1e-6 * _span(component.name)
    return hint.target - step if hint.op in (AT_LEAST, ABOVE) else hint.target + step


def _span(name: str) -> float:
    curve = MODEL.component(name).curve
    return abs(curve.good - curve.bad) if hasattr(curve, "good") else 1.0


@settings(max_examples=400, deadline=None)
@given(card=cards, tier=st.sampled_from(["yellow", "red"]))
def test_each_hint_alone_lifts_the_score_to_the_goal_and_one_step_less_does_not(
    card: Scorecard, tier: str
) -> None:
    found = recovery(MODEL, card, tier)
    assert found is not None
    assert card.score is not None
    if card.score >= found.goal.score:
        assert found.hints == ()
        return
    if not found.alone:
        return
    assert found.hints, "alone means at least one component can"
    for hint in found.hints:
        assert with_value(card, hint, probe(hint)).score >= found.goal.score, hint
        short = with_value(card, hint, less(hint)).score
        if hint.op != ABOVE:  # above a band's floor: any value past it is the same band
            assert short is not None
            assert short < found.goal.score, hint


@settings(max_examples=300, deadline=None)
@given(card=cards)
def test_when_no_component_can_alone_all_the_hints_together_do(card: Scorecard) -> None:
    found = recovery(MODEL, card, "red")
    assert found is not None
    if found.alone or not found.hints:
        return
    for hint in found.hints:
        card = with_value(card, hint, probe(hint))
    assert card.score is not None
    assert card.score >= found.goal.score


@settings(max_examples=300, deadline=None)
@given(
    card=cards,
    name=st.sampled_from(sorted(VALUES)),
    subscore=st.floats(0, 100),
    tier=st.sampled_from(["yellow", "red"]),
)
def test_a_sub_score_a_csm_set_never_breaks_the_hints(
    card: Scorecard, name: str, subscore: float, tier: str
) -> None:
    """An adjusted card (a sub-score its value would not give): hints still hold."""
    active = ActiveOverride("o", "adjust", "r", "a", 0.0, 1.0, component=name, subscore=subscore)
    card = override.adjusted(card, active)
    for fixed in ((), (name,)):
        found = recovery(MODEL, card, tier, fixed=fixed)
        assert found is not None
        if not found.alone:
            continue
        for hint in found.hints:
            assert with_value(card, hint, probe(hint)).score >= found.goal.score, hint


def test_the_goal_is_the_next_tier_up_past_the_margin(model: Model) -> None:
    assert goal(model, "red") == ("yellow", 43.0)
    assert goal(model, "yellow") == ("green", 73.0)
    assert goal(model, "green") is None
    assert goal(model, "unknown") is None  # what it lacks is data


def test_hints_are_in_the_components_own_terms(model: Model) -> None:
    card = score_components(model, {"login_frequency": 8, "feature_adoption": 3})
    found = recovery(model, card, "red")
    assert found is not None
    assert found.alone
    by_name = {h.component: h for h in found.hints}
    assert by_name["login_frequency"].op == AT_LEAST
    assert by_name["feature_adoption"][2:4] == (AT_LEAST, 6.0)  # distinct features: whole
    assert by_name["nps"].value is None  # no data: a reading of it would do
    # No data on what counts against it (escalations, tickets): nothing to take a step on.
    assert {"escalations", "support_tickets"}.isdisjoint(by_name)
    # The easiest first: the fewest sub-score points to climb, from the weights (before a
    # count is rounded up to a whole number).
    gap = (found.goal.score - card.score) * card.total_weight
    climbs = [
        gap / model.component(h.component).weight
        + (found.goal.score if h.subscore is None else 0.0)
        for h in found.hints
    ]
    assert climbs == sorted(climbs)


def test_fewer_is_better_is_hinted_as_at_most(model: Model) -> None:
    card = score_components(
        model,
        {
            "login_frequency": 16,
            "feature_adoption": 6,
            "session_duration": 12,
            "license_utilization": 0.7,
            "escalations": 1,
            "nps": 30,
        },
    )
    found = recovery(model, card, "yellow")
    assert found is not None
    assert found.alone
    assert [h[:4] for h in found.hints] == [("escalations", 1, AT_MOST, 0.0)]


def test_a_count_is_hinted_in_whole_numbers(model: Model) -> None:
    card = score_components(
        model, {"login_frequency": 16, "feature_adoption": 3, "license_utilization": 0.6, "nps": 30}
    )
    found = recovery(model, card, "yellow")
    assert found is not None
    features = next(h for h in found.hints if h.component == "feature_adoption")
    assert features.target == int(features.target)
    assert features.target > 3


def test_a_component_a_csm_set_gets_no_hint(model: Model) -> None:
    card = score_components(model, {"login_frequency": 10, "escalations": 1, "nps": 10})
    found = recovery(model, card, "red", fixed=("escalations",))
    assert found is not None
    assert "escalations" not in {h.component for h in found.hints}


def test_a_component_without_data_is_hinted_as_a_reading(model: Model) -> None:
    card = score_components(model, {"login_frequency": 8, "feature_adoption": 3})
    found = recovery(model, card, "red")
    assert found is not None
    nps = next(h for h in found.hints if h.component == "nps")
    assert nps.value is None
    assert nps.op == AT_LEAST
    assert with_value(card, nps, nps.target).score >= found.goal.score


def test_no_hint_in_the_best_tier(model: Model) -> None:
    assert recovery(model, score_components(model, {"nps": 50}), "green") is None


BANDED = """
version: banded
bucket: 1d
tiers:
  margin: 0
  levels:
    - {name: good, label: Good, min_score: 50}
    - {name: bad, label: Bad, min_score: 0}
components:
  adoption:
    signal: distinct_features
    window: 30d
    weight: 1
    curve:
      bands:
        - {upto: 2, score: 0}
        - {upto: 5, score: 60}
        - {score: 100}
  sessions:
    signal: avg_session_minutes
    window: 30d
    weight: 1
    curve:
      bands:
        - {upto: 3, score: 0}
        - {upto: 10.5, score: 40}
        - {score: 100}
"""


def test_a_band_is_reached_just_past_its_floor() -> None:
    model = parse_model(BANDED)
    card = score_components(model, {"adoption": 1, "sessions": 2})
    found = recovery(model, card, "bad")
    assert found is not None
    assert found.goal == ("good", 50.0)
    assert found.alone
    assert found.hints[0][:4] == ("adoption", 1.0, AT_LEAST, 6.0)
    sessions = recovery(model, score_components(model, {"adoption": 4, "sessions": 2}), "bad")
    assert sessions is not None
    hint = next(h for h in sessions.hints if h.component == "sessions")
    assert (hint.op, hint.target) == (ABOVE, 3.0)  # a measure: anything above the floor


@pytest.fixture
def red_alert(model: Model) -> bytes:
    card = score_components(
        model, {"login_frequency": 6, "feature_adoption": 3, "escalations": 2, "nps": -20}
    )
    change_ = decide(model, card, None)
    assert change_ is not None
    assert change_.tier == "red"
    return to_json(build_alert(model, "acme", None, change_, Cause("event"), 0.0, mode=Mode.LIVE))


def test_an_alert_carries_at_most_three_hints_and_reads_back_unchanged(red_alert: bytes) -> None:
    alert = from_json(red_alert)
    assert alert.recovery is not None
    assert 0 < len(alert.recovery.hints) <= 3
    assert to_json(alert) == red_alert


def test_a_catch_up_alert_carries_no_hints(model: Model) -> None:
    """History: its next steps are explain's and the API's, from the account as it is."""
    card = score_components(model, {"login_frequency": 6, "escalations": 2})
    change_ = decide(model, card, None)
    assert change_ is not None
    alert = build_alert(model, "acme", None, change_, Cause("event"), 0.0, mode=Mode.CATCH_UP)
    assert alert.recovery is None
    assert b"recovery" not in to_json(alert)


def test_hints_in_words() -> None:
    assert (
        change({"component": "feature_adoption", "value": 3.0, "op": ">=", "target": 6.0})
        == "feature_adoption from 3 to at least 6"
    )
    assert (
        change({"component": "nps", "value": None, "op": ">=", "target": 10.25})
        == "nps (no data) at least 10.3"
    )  # rounded up: the printed value still does it
    assert (
        change({"component": "tickets", "value": 0.5, "op": "<=", "target": 0.4449})
        == "tickets from 0.5 to at most 0.444"
    )
    assert (
        summary(
            {
                "tier": "yellow",
                "alone": False,
                "changes": [
                    {"component": "a", "value": 1.0, "op": ">=", "target": 2.0},
                    {"component": "b\x1b", "value": 1.0, "op": "<=", "target": 0.0},
                ],
            }
        )
        == "back to yellow: a from 1 to at least 2, and b\\x1b from 1 to at most 0"
    )


def test_explain_says_why_a_pinned_or_unknown_account_has_no_hints() -> None:
    def printed(data: dict[str, Any]) -> str:
        out = io.StringIO()
        print_recovery(data, Console(file=out, width=10_000, force_terminal=False))
        return out.getvalue()

    pinned = {"tier": "red", "recovery": None, "override": {"kind": "pin", "tier": "red"}}
    assert "follows the pin" in printed(pinned)
    assert "what it lacks is data" in printed(
        {"tier": "unknown", "recovery": None, "override": None}
    )
    assert printed({"tier": "green", "recovery": None, "override": None}) == ""
    red = {
        "tier": "red",
        "override": None,
        "recovery": {
            "tier": "yellow",
            "score": 43.0,
            "alone": True,
            "by_itself_at": None,
            "changes": [
                {
                    "component": "feature_adoption",
                    "value": 1.0,
                    "op": ">=",
                    "target": 8.0,
                    "description": "Distinct features used in 30 days.",
                    "by_itself_at": None,
                }
            ],
        },
    }
    assert (
        "  feature_adoption from 1 to at least 8  (Distinct features used in 30 days.)\n"
        in printed(red)
    )  # in its own unit
    assert "never by itself" in printed(red)


def test_the_readmes_worked_example(model: Model) -> None:
    """README, What would bring it back: acme (56.55, yellow) needs two changes together."""
    card = score_components(
        model,
        {
            "login_frequency": 12,
            "feature_adoption": 5,
            "session_duration": 9.5,
            "license_utilization": 0.55,
            "support_tickets": 3,
            "escalations": 1,
            "nps": 30,
            "csat": 4.0,
        },
    )
    found = recovery(model, card, "yellow")
    assert found is not None
    assert not found.alone
    words = summary(
        {
            "tier": found.goal.tier,
            "alone": found.alone,
            "changes": [h._asdict() for h in found.hints],
        }
    )
    assert words == (
        "back to green: escalations from 1 to at most 0, and login_frequency"
        " from 12 to at least 19.7"
    )
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    assert (
        "all of `escalations from 1 to at most 0`, `login_frequency from 12 to at least"
        " 19.7`" in readme
    )


@settings(max_examples=300, deadline=None)
@given(card=cards, name=st.sampled_from(sorted(VALUES)), value=st.floats(-200, 200))
def test_the_quick_check_is_the_card_to_the_bit(card: Scorecard, name: str, value: float) -> None:
    component = MODEL.component(name)
    assert score_with(MODEL, card, component, value) == lifted(MODEL, card, component, value).score


# A kind of curve this module has no inverse for: a rank among peers is no function of
# the account's own value.
NO_INVERSE = Percentile()


def test_a_curve_without_an_inverse_gets_no_hint_and_breaks_nothing(model: Model) -> None:
    unknown = ("feature_adoption", "nps")
    strange = replace(
        model,
        components=tuple(
            replace(c, curve=NO_INVERSE) if c.name in unknown else c for c in model.components
        ),
    )
    for values in (
        {"login_frequency": 12, "feature_adoption": 3, "nps": 10},
        {"login_frequency": 8, "feature_adoption": 3, "nps": -20},
    ):
        card = score_components(model, values)
        known, found = recovery(model, card, "red"), recovery(strange, card, "red")
        assert known is not None
        assert found is not None
        assert set(unknown) <= {h.component for h in known.hints}
        assert found.hints
        assert set(unknown).isdisjoint(h.component for h in found.hints)
        if found.alone:  # the others' hints are what they were
            assert found.hints == tuple(h for h in known.hints if h.component not in unknown)
        else:  # together they still do it
            for hint in found.hints:
                card = lifted(strange, card, strange.component(hint.component), probe(hint))
            assert card.score is not None
            assert card.score >= found.goal.score


def test_only_curves_without_an_inverse_give_no_hints_at_all(model: Model) -> None:
    card = score_components(model, {"feature_adoption": 1})
    strange = replace(
        model, components=tuple(replace(c, curve=NO_INVERSE) for c in model.components)
    )
    found = recovery(strange, card, "red")
    assert found is not None
    assert found.hints == ()
    assert not found.alone
    assert alert_recovery(strange, card, "red") is None  # the alert goes out without


def test_a_share_of_the_seats_is_also_said_in_people() -> None:
    share = {
        "component": "license_utilization",
        "signal": "active_user_share",
        "value": 0.2,
        "op": ">=",
        "target": 0.7500000000000001,
    }
    seats = {"attributes": {"seats_purchased": 10}}
    assert in_users(share, seats) == " (6 more active users of 10 seats)"
    assert in_users({**share, "target": 0.3}, seats) == " (1 more active user of 10 seats)"
    assert in_users(share, {"attributes": {}}) == ""  # no seats: the share alone
    assert in_users({**share, "signal": "distinct_features"}, seats) == ""
    assert in_users(share, {"attributes": {"seats_purchased": True}}) == ""
