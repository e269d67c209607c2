"""Segment models: the file's ``segments:``, merged into the default model, and which
model scores an account."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from worker.alerts import Cause, as_dict, build_alert
from worker.api.app import create_app
from worker.commands import _print_explanation
from worker.contracts import first_error
from worker.errors import ConfigError
from worker.events.types import Event, SourceRef
from worker.modelfile.segments import load_models, merge_segment, parse_models
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.rollup import score_components
from worker.scoring.segments import ModelSet, as_model_set, model_name, scoring_model
from worker.scoring.tierchange import Published, decide
from worker.windows.plan import Planner

EXAMPLE = str(resources.files("worker").joinpath("models", "segments.example.yaml"))


_EXAMPLE = load_models(EXAMPLE)


@pytest.fixture(scope="module")
def example() -> ModelSet:
    return _EXAMPLE


def _parse(raw: dict[str, Any]) -> ModelSet:
    return parse_models(yaml.safe_dump(raw, sort_keys=False), source="m.yaml")


def _with(raw_model: dict[str, Any], segments: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(raw_model)
    raw["segments"] = segments
    return raw


# --------------------------------------------------------------------------- the file


def test_a_file_without_segments_is_one_model_and_its_own_windows(
    raw_model: dict[str, Any], model: Model
) -> None:
    models = _parse(raw_model)
    assert models.default == model
    assert models.default.segment is None
    assert dict(models.segments) == {}
    assert models.windows is models.default  # the windows layer sees what it saw before


def test_the_example_file_has_the_four_segments(example: ModelSet) -> None:
    assert list(example.segments) == ["enterprise", "mid_market", "smb", "onboarding"]
    assert all(m.segment == name for name, m in example.segments.items())
    assert all(m.version == example.version for m in example.all())


def test_the_example_default_is_the_packaged_default_model(example: ModelSet, model: Model) -> None:
    assert example.default.components == model.components
    assert example.default.tiers == model.tiers


def test_tiers_are_replaced_as_a_whole(example: ModelSet) -> None:
    enterprise = example.for_segment("enterprise")
    assert [t.min_score for t in enterprise.tiers] == [80, 50, 0]
    assert [t.min_score for t in example.default.tiers] == [70, 40, 0]


def test_component_fields_given_replace_the_defaults_only(example: ModelSet) -> None:
    default, enterprise = example.default, example.for_segment("enterprise")
    assert enterprise.component("license_utilization").weight == 1.5
    assert (
        enterprise.component("license_utilization").curve
        == default.component("license_utilization").curve
    )
    assert enterprise.component("login_frequency") == default.component("login_frequency")


def test_null_removes_a_component_and_a_window_may_change(example: ModelSet) -> None:
    onboarding = example.for_segment("onboarding")
    names = [c.name for c in onboarding.components]
    assert "nps" not in names
    assert "csat" not in names
    assert onboarding.component("login_frequency").window_buckets == 14


def test_a_new_component_is_added(raw_model: dict[str, Any]) -> None:
    raw = _with(
        raw_model,
        {
            "smb": {
                "components": {
                    "ticket_load": {
                        "signal": "tickets_opened",
                        "window": "30d",
                        "weight": 0.5,
                        "curve": {"linear": {"bad": 3, "good": 0}},
                    }
                }
            }
        },
    )
    smb = _parse(raw).for_segment("smb")
    assert smb.components[-1].name == "ticket_load"
    assert len(smb.components) == len(raw_model["components"]) + 1


def test_merging_leaves_the_default_raw_model_alone(raw_model: dict[str, Any]) -> None:
    before = copy.deepcopy(raw_model)
    merge_segment(raw_model, {"components": {"nps": None, "csat": {"weight": 2}}}, "x")
    assert raw_model == before


@pytest.mark.parametrize(
    ("segments", "names"),
    [
        (
            {"enterprise": {"components": {"nps": {"weight": 0}}}},
            "m.yaml: segments.enterprise.components.nps.weight: ",
        ),
        (
            {"enterprise": {"components": {"nps": {"colour": "red"}}}},
            "m.yaml: segments.enterprise.components.nps",
        ),
        ({"enterprise": {"tiers": {"margin": 3}}}, "m.yaml: segments.enterprise.tiers.levels: "),
        ({"enterprise": {"bucket": "1h"}}, "m.yaml: segments.enterprise.bucket: "),
        ({"Enterprise": {}}, "m.yaml: segments"),
        ({"default": {}}, "m.yaml: segments"),
    ],
)
def test_schema_errors_name_the_field(
    raw_model: dict[str, Any], segments: dict[str, Any], names: str
) -> None:
    with pytest.raises(ConfigError, match="^" + names.replace(".", r"\.")):
        _parse(_with(raw_model, segments))


@pytest.mark.parametrize(
    ("segments", "names"),
    [
        (
            {"smb": {"components": {"reopens": {"signal": "tickets_opened", "weight": 1}}}},
            "m.yaml: segments.smb.components.reopens: a component the default model does not "
            "have needs window, curve",
        ),
        ({"smb": {"components": {"nope": None}}}, "m.yaml: segments.smb.components.nope: removes"),
        (
            {"smb": {"components": {"nps": {"signal": "nope"}}}},
            "m.yaml: segments.smb: components.nps.signal: unknown signal 'nope'",
        ),
        (
            {"smb": {"components": {"nps": {"window": "91d"}}}},
            "m.yaml: segments.smb: components.nps.window: ",
        ),
        (
            {
                "smb": {
                    "tiers": {
                        "margin": 30,
                        "levels": [
                            {"name": "a", "label": "A", "min_score": 50},
                            {"name": "b", "label": "B", "min_score": 0},
                        ],
                    }
                }
            },
            "m.yaml: segments.smb: tiers.margin: ",
        ),
    ],
)
def test_compile_errors_name_the_segment_and_field(
    raw_model: dict[str, Any], segments: dict[str, Any], names: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(_with(raw_model, segments))
    assert str(info.value).startswith(names), info.value


def test_removing_every_component_is_an_error(raw_model: dict[str, Any]) -> None:
    raw = _with(raw_model, {"smb": {"components": dict.fromkeys(raw_model["components"])}})
    with pytest.raises(ConfigError, match=r"segments\.smb\.components: removes every component"):
        _parse(raw)


def test_the_example_file_is_valid_against_the_schema() -> None:
    with open(EXAMPLE, encoding="utf-8") as f:
        assert first_error("model", yaml.safe_load(f)) is None


# --------------------------------------------------------------------------- selection


@pytest.mark.parametrize("segment", [None, "", "retail", 7, ["enterprise"], "Enterprise"])
def test_an_account_without_a_segment_model_gets_the_default(
    example: ModelSet, segment: object
) -> None:
    assert example.for_segment(segment) is example.default


@given(
    st.one_of(
        st.none(),
        st.text(max_size=70),
        st.integers(),
        st.floats(),
        st.lists(st.text(max_size=5), max_size=3),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    )
)
def test_any_segment_value_gets_its_model_or_the_default(segment: object) -> None:
    models = _EXAMPLE
    model = models.for_segment(segment)
    if isinstance(segment, str) and segment in models.segments:
        assert model.segment == segment
    else:
        assert model is models.default


def test_an_account_of_a_segment_gets_its_model(example: ModelSet) -> None:
    for name, segment_model in example.segments.items():
        assert example.for_segment(name) is segment_model
        assert model_name(segment_model) == name
    assert model_name(example.default) == "default"


def test_one_model_is_a_set_of_one(model: Model) -> None:
    models = as_model_set(model)
    assert models.default is model
    assert models.for_segment("enterprise") is model
    assert as_model_set(models) is models


def _published(model: str | None) -> Published:
    return Published("green", 75.0, 1, {}, model)


@pytest.mark.parametrize(
    ("segment", "published", "changed", "want", "switched"),
    [
        ("enterprise", "default", True, "enterprise", True),  # moved by this update
        ("enterprise", None, True, "enterprise", True),  # published before segment models
        ("enterprise", "enterprise", True, "enterprise", False),  # another attribute changed
        ("enterprise", "default", False, "enterprise", False),  # only an update moves it
        ("retail", "enterprise", True, "default", True),  # back to the default model
        ("retail", "default", True, "default", False),
        ("retail", None, True, "default", False),
    ],
)
def test_the_scoring_model_and_whether_an_update_switched_to_it(
    example: ModelSet, segment: str, published: str | None, changed: bool, want: str, switched: bool
) -> None:
    model, moved = scoring_model(example, {"segment": segment}, _published(published), changed)
    assert model_name(model) == want
    assert moved is switched


def test_a_first_score_is_no_switch(example: ModelSet) -> None:
    assert scoring_model(example, {"segment": "smb"}, None, True) == (
        example.for_segment("smb"),
        False,
    )


# --------------------------------------------------------------------------- windows


def test_the_windows_model_keeps_every_models_windows(example: ModelSet) -> None:
    lengths = {c.window_buckets for c in example.windows.components}
    assert lengths == {14, 30, 90}
    assert example.windows.bucket_seconds == example.default.bucket_seconds
    for segment_model in example.all():
        assert set(segment_model.components) <= set(example.windows.components)


def test_an_event_touches_a_component_of_any_segment_it_feeds(raw_model: dict[str, Any]) -> None:
    raw = copy.deepcopy(raw_model)
    del raw["components"]["escalations"]
    raw["segments"] = {
        "enterprise": {
            "components": {
                "escalations": {
                    "signal": "escalations",
                    "window": "90d",
                    "weight": 1.5,
                    "curve": {"linear": {"bad": 2, "good": 0}},
                }
            }
        }
    }
    models = _parse(raw)
    assert "escalations" not in {c.name for c in models.default.components}
    now = 1768478400.0
    escalated = Event(
        "ticket", "e1", "a1", now, {"event_id": "e1", "status": "escalated"}, SourceRef("t", 0, 0)
    )
    plan = Planner(models.windows).plan("a1", [escalated], int(now // 86400))
    assert "escalations" in plan.touched
    assert plan.totals().counters == {(int(now // 86400), "tk_esc"): 1.0}


# --------------------------------------------------------------------------- deciding


def test_a_new_segment_model_decides_on_its_own_boundaries(example: ModelSet) -> None:
    enterprise = example.for_segment("enterprise")
    values = {"login_frequency": 16.0}  # sub-score 75: green by default, yellow for enterprise
    card = score_components(enterprise, values)
    published = Published("green", 75.0, 3, {"login_frequency": [16.0, 75.0, 1.0]})
    assert decide(example.default, score_components(example.default, values), published) is None
    change = decide(enterprise, card, published, hysteresis=False)
    assert change is not None
    assert (change.previous_tier, change.tier) == ("green", "yellow")


def test_a_tier_the_new_model_lacks_is_left_on_plain_boundaries(raw_model: dict[str, Any]) -> None:
    raw = _with(
        raw_model,
        {
            "onboarding": {
                "tiers": {
                    "margin": 3,
                    "levels": [
                        {"name": "on_track", "label": "On track", "min_score": 50},
                        {"name": "stalled", "label": "Stalled", "min_score": 0},
                    ],
                }
            }
        },
    )
    onboarding = _parse(raw).for_segment("onboarding")
    card = score_components(onboarding, {"login_frequency": 12.5})  # sub-score ~53
    published = Published("yellow", 53.0, 1, {"login_frequency": [12.5, 53.1, 1.0]})
    change = decide(onboarding, card, published)
    assert change is not None
    assert change.tier == "on_track"
    assert change.seq == 2


def test_the_alert_names_the_segment_model(example: ModelSet) -> None:
    for segment_model in example.all():
        card = score_components(segment_model, {"login_frequency": 16.0})
        change = decide(segment_model, card, None)
        assert change is not None
        alert = as_dict(
            build_alert(
                segment_model, "a1", "x", change, Cause("account_update"), 0.0, mode=Mode.LIVE
            )
        )
        assert alert["model"] == {"version": example.version, "segment": model_name(segment_model)}
        assert first_error("alert", alert) is None


# --------------------------------------------------------------------------- the edges


def test_the_api_shows_the_set(example: ModelSet) -> None:
    body = TestClient(create_app(example, fakeredis.FakeAsyncRedis())).get("/model").json()
    assert body["segment"] == "default"
    assert body["version"] == "segments-example-2026.12"
    assert [s["segment"] for s in body["segments"]] == list(example.segments)
    enterprise = body["segments"][0]
    assert [t["min_score"] for t in enterprise["tiers"]] == [80, 50, 0]
    assert {c["name"]: c["weight"] for c in enterprise["components"]}["license_utilization"] == 1.5
    assert all(s["segments"] == [] for s in body["segments"])


def test_check_model_prints_every_segment_model() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "check-model", EXAMPLE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.startswith("model segments-example-2026.12: bucket 86400 s")
    for name in ("enterprise", "mid_market", "smb", "onboarding"):
        assert f"\nsegment model {name}: bucket 86400 s" in out
    assert "green >= 80" in out
    onboarding = out.split("segment model onboarding")[1]
    assert "nps" not in onboarding
    assert "window 14 buckets" in onboarding


def test_check_model_names_the_field_of_a_bad_segment(tmp_path: Path) -> None:
    with open(EXAMPLE, encoding="utf-8") as f:
        text = f.read()
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text.replace("license_utilization: {weight: 1.5}", "license_utilization: {weight: -1}"),
        "utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "check-model", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "segments.enterprise.components.license_utilization.weight" in result.stderr


def test_explain_names_the_segment_model_it_scored_by() -> None:
    data = {
        "account_id": "acme",
        "at": "2026-11-22T09:30:00.000+00:00",
        "model_version": "v1",
        "model": {"version": "v1", "segment": "enterprise"},
        "segment": "enterprise",
        "score": 55.0,
        "tier": "yellow",
        "published_tier": "yellow",
        "published_seq": 3,
        "attributes": {"segment": "enterprise"},
        "components": [],
    }
    out = io.StringIO()
    _print_explanation(data, Console(file=out, width=10_000, force_terminal=False))
    assert "model v1 (enterprise segment model)" in out.getvalue()
    out = io.StringIO()
    _print_explanation(
        {**data, "model": {"version": "v1", "segment": "default"}},
        Console(file=out, width=10_000, force_terminal=False),
    )
    assert "model v1, at" in out.getvalue()
