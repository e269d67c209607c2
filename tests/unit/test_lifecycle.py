"""Lifecycle: accounts younger than the model file's onboarding days are scored by its
onboarding model, and leave it at the start of the first bucket after created_at + days."""

from __future__ import annotations

from importlib import resources

import pytest

from worker.contracts import first_error
from worker.errors import ConfigError
from worker.modelfile.segments import load_models, parse_models
from worker.notify.format import alert_message, lifecycle_words
from worker.scoring.segments import ModelSet, Onboarding, created_at, scoring_model
from worker.scoring.tierchange import Published

DAY = 86400
EXAMPLE = str(resources.files("worker").joinpath("models", "segments.example.yaml"))
# 2026-01-01T00:00:00Z; created at noon, 30 days: onboarding ends 2026-01-31T12:00, so at
# the start of the next day, 2026-02-01T00:00.
MIDNIGHT = 1767225600.0
CREATED = "2026-01-01T12:00:00Z"
ENDS = MIDNIGHT + 31 * DAY

MODEL = """
version: life-1
bucket: 1d
tiers:
  margin: 3
  levels:
    - {name: green, label: Good, min_score: 70}
    - {name: red, label: Bad, min_score: 0}
components:
  activity: {signal: logins, window: 14d, weight: 1, curve: {linear: {bad: 0, good: 20}}}
segments:
  onboarding:
    components:
      activity: {curve: {linear: {bad: 0, good: 4}}}
  smb:
    description: Small accounts.
lifecycle:
  onboarding: {days: 30, model: onboarding}
"""


@pytest.fixture(scope="module")
def models() -> ModelSet:
    return parse_models(MODEL, "life")


def _published(model: str | None) -> Published:
    return Published("green", 80.0, 1, {}, model)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T12:00:00Z", MIDNIGHT + DAY / 2),
        ("2026-01-01T13:00:00+01:00", MIDNIGHT + DAY / 2),
        ("2026-01-01T12:00:00.250Z", MIDNIGHT + DAY / 2 + 0.25),
        ("2026-01-01T12:00:00", None),  # no offset: which noon?
        ("2026-13-01T12:00:00Z", None),
        ("yesterday", None),
        (1767225600, None),
        (None, None),
    ],
)
def test_created_at_is_a_time_with_its_offset(value: object, expected: float | None) -> None:
    assert created_at({"created_at": value}) == expected


def test_onboarding_ends_at_the_start_of_the_next_bucket() -> None:
    onboarding = Onboarding(30, "onboarding")
    assert onboarding.ends({"created_at": CREATED}, DAY) == ENDS
    assert onboarding.ends({"created_at": "2026-01-01T00:00:00Z"}, DAY) == MIDNIGHT + 30 * DAY
    assert onboarding.ends({}, DAY) is None


def test_a_young_account_is_scored_by_the_onboarding_model_whatever_its_segment(
    models: ModelSet,
) -> None:
    attrs = {"segment": "smb", "created_at": CREATED}
    assert models.for_account(attrs, MIDNIGHT + 10 * DAY).segment == "onboarding"
    assert models.for_account(attrs, ENDS - 1).segment == "onboarding"
    assert models.for_account(attrs, ENDS).segment == "smb"
    assert models.for_account({"segment": "smb"}, MIDNIGHT).segment == "smb"  # no created_at
    assert models.for_account({"created_at": CREATED}, ENDS).segment is None  # the default


def test_the_end_of_onboarding_is_a_rescore_time(models: ModelSet) -> None:
    attrs = {"created_at": CREATED}
    assert models.rescore_at(attrs, MIDNIGHT, None) == ENDS  # nothing else would rescore it
    assert models.rescore_at(attrs, MIDNIGHT, ENDS + DAY) == ENDS
    assert models.rescore_at(attrs, MIDNIGHT, ENDS - DAY) == ENDS - DAY
    assert models.rescore_at(attrs, ENDS, ENDS + DAY) == ENDS + DAY  # over: as before
    assert models.rescore_at({}, MIDNIGHT, None) is None
    assert ModelSet(models.default).rescore_at(attrs, MIDNIGHT, None) is None


def test_leaving_onboarding_switches_models_in_the_bucket_it_ends(models: ModelSet) -> None:
    attrs = {"segment": "smb", "created_at": CREATED}
    model, switched = scoring_model(models, attrs, _published("onboarding"), False, ENDS + 5)
    assert (model.segment, switched) == ("smb", True)
    # A day later the tier it kept is news no more: a change then has a cause of its own.
    assert scoring_model(models, attrs, _published("onboarding"), False, ENDS + DAY)[1] is False
    # Still onboarding, or already published by its segment's model: no switch.
    assert scoring_model(models, attrs, _published("onboarding"), False, ENDS - 5)[1] is False
    assert scoring_model(models, attrs, _published("smb"), False, ENDS + 5)[1] is False


def test_a_lifecycle_naming_no_segment_model_is_refused_naming_the_field() -> None:
    with pytest.raises(
        ConfigError,
        match=r"life: lifecycle\.onboarding\.model: 'trial' is not "
        r"a segment model of this file \(segments: "
        r"onboarding, smb\)",
    ):
        parse_models(MODEL.replace("model: onboarding}", "model: trial}"), "life")
    with pytest.raises(ConfigError, match=r"life: lifecycle\.onboarding\.days: "):
        parse_models(MODEL.replace("days: 30", "days: 0"), "life")


def test_the_segments_example_has_a_lifecycle() -> None:
    assert load_models(EXAMPLE).onboarding == Onboarding(60, "onboarding")


def test_an_account_record_may_say_when_it_was_created() -> None:
    record = {
        "account_id": "a",
        "segment": "smb",
        "seats_purchased": 3,
        "created_at": "2026-01-01T12:00:00Z",
    }
    assert first_error("account", record) is None
    assert first_error("account", {**record, "created_at": "2026-01-01"}) is not None


def test_slack_says_onboarding_ended() -> None:
    alert = {
        "account_id": "a",
        "tier": "red",
        "previous_tier": "green",
        "score": 30.0,
        "previous_score": 100.0,
        "segment": "smb",
        "model": {"version": "life-1", "segment": "smb"},
        "cause": {"kind": "onboarding_ended"},
        "triggering_component": {
            "name": "activity",
            "value": 6.0,
            "previous_value": 6.0,
            "contribution_change": -70.0,
        },
        "components": {},
    }
    assert lifecycle_words(alert) == "onboarding ended: scored by the smb model now"
    assert "*Why:* onboarding ended: scored by the smb model now" in str(
        alert_message(alert, None, "")
    )
    assert lifecycle_words({**alert, "cause": {"kind": "window_expiry"}}) is None
