"""The scoring model: the packaged default, durations, and model files that must not load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.errors import ConfigError
from worker.modelfile.load import (
    MAX_WINDOW_SECONDS,
    default_model_text,
    load_model,
    parse_duration,
    parse_model,
)
from worker.scoring.curves import Band, Bands, Linear
from worker.scoring.model import Model
from worker.scoring.signals import SIGNALS

ModelOf = Callable[[dict[str, Any]], Model]

DEFAULT_COMPONENTS = (
    "login_frequency",
    "feature_adoption",
    "session_duration",
    "license_utilization",
    "support_tickets",
    "escalations",
    "nps",
    "csat",
)

# --------------------------------------------------------------------------- the default


def test_default_model_has_exactly_the_eight_components_in_file_order(model: Model) -> None:
    assert tuple(c.name for c in model.components) == DEFAULT_COMPONENTS


def test_default_model_basics(model: Model) -> None:
    assert model.version == "default-2026.11"
    assert model.bucket_seconds == 86400
    assert model.margin == 3.0
    assert model.max_window_buckets == 90


def test_escalations_weigh_most(model: Model) -> None:
    weights = {c.name: c.weight for c in model.components}
    assert weights["escalations"] == 1.25
    assert max(weights, key=weights.__getitem__) == "escalations"
    assert sorted(weights.values())[-2] < 1.25  # strictly the highest, not tied


@pytest.mark.parametrize(
    ("name", "weight"),
    [
        ("login_frequency", 1.0),
        ("feature_adoption", 1.0),
        ("session_duration", 0.75),
        ("license_utilization", 1.0),
        ("support_tickets", 0.75),
        ("escalations", 1.25),
        ("nps", 0.85),
        ("csat", 0.85),
    ],
)
def test_default_weights(model: Model, name: str, weight: float) -> None:
    assert model.component(name).weight == weight


@pytest.mark.parametrize(
    ("name", "signal", "window_buckets"),
    [
        ("login_frequency", "logins_per_active_user", 30),
        ("feature_adoption", "distinct_features", 30),
        ("session_duration", "avg_session_minutes", 30),
        ("license_utilization", "active_user_share", 30),
        ("support_tickets", "tickets_opened", 30),
        ("escalations", "escalations", 90),
        ("nps", "nps", 90),
        ("csat", "csat_avg", 90),
    ],
)
def test_default_signals_and_windows(
    model: Model, name: str, signal: str, window_buckets: int
) -> None:
    component = model.component(name)
    assert component.signal is SIGNALS[signal]
    assert component.window_buckets == window_buckets
    assert component.description  # every default component explains itself


def test_default_tiers(model: Model) -> None:
    assert [(t.name, t.label, t.min_score) for t in model.tiers] == [
        ("green", "Doing well", 70.0),
        ("yellow", "Take notice", 40.0),
        ("red", "Requires attention", 0.0),
    ]


def test_default_curves(model: Model) -> None:
    assert model.component("login_frequency").curve == Linear(4, 20)
    assert model.component("support_tickets").curve == Linear(8, 1)  # fewer is better
    assert model.component("escalations").curve == Bands((Band(0, 100), Band(1, 40), Band(None, 0)))


def test_component_subscore_uses_its_curve(model: Model) -> None:
    assert model.component("login_frequency").subscore(12) == 50.0
    assert model.component("escalations").subscore(1) == 40


def test_lookup_of_unknown_names_raises_key_error(model: Model) -> None:
    with pytest.raises(KeyError):
        model.component("nope")
    with pytest.raises(KeyError):
        model.tier("blue")
    assert model.tier("yellow").label == "Take notice"


@pytest.mark.parametrize("path", [None, ""])
def test_load_model_without_path_loads_the_packaged_default(path: str | None) -> None:
    assert load_model(path) == parse_model(default_model_text())


def test_load_model_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(default_model_text().replace("default-2026.11", "custom-1"), "utf-8")
    assert load_model(path).version == "custom-1"
    assert load_model(str(path)).version == "custom-1"


def test_load_model_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_model(path)


def test_packaged_default_matches_the_repository_copy() -> None:
    repo_copy = Path(__file__).resolve().parents[2] / "worker" / "models" / "default.yaml"
    assert default_model_text() == repo_copy.read_text("utf-8")


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10s", 10),
        ("5m", 300),
        ("2h", 7200),
        ("30d", 30 * 86400),
        ("90d", 90 * 86400),
        ("1d", 86400),
        ("0s", 0),
        ("007m", 420),
        (3600, 3600),
        (1, 1),
        (86400.0, 86400),
    ],
)
def test_parse_duration(value: str | int, seconds: int) -> None:
    assert parse_duration(value, "field") == seconds


@pytest.mark.parametrize(
    "value", ["10", "10w", "1.5h", "-5m", "h", "", " 10s", "10s ", "10 s", "10S"]
)
def test_parse_duration_rejects_what_is_no_duration(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^comp\.window: .* is not a duration"):
        parse_duration(value, "comp.window")


# --------------------------------------------------------------------------- good variants


def test_windows_in_plain_seconds_and_hour_buckets(
    raw_model: dict[str, Any], model_of: ModelOf
) -> None:
    raw_model["bucket"] = "1h"
    raw_model["components"]["nps"]["window"] = 7200
    raw_model["components"]["csat"]["window"] = "90d"
    m = model_of(raw_model)
    assert m.bucket_seconds == 3600
    assert m.component("nps").window_buckets == 2
    assert m.component("csat").window_buckets == 90 * 24


def test_integral_float_durations_load(raw_model: dict[str, Any], model_of: ModelOf) -> None:
    # JSON Schema counts 86400.0 as an integer, so the loader must too.
    raw_model["bucket"] = 86400.0
    raw_model["components"]["nps"]["window"] = 2592000.0
    m = model_of(raw_model)
    assert m.bucket_seconds == 86400
    assert m.component("nps").window_buckets == 30


def test_window_of_exactly_ninety_days_is_allowed(
    raw_model: dict[str, Any], model_of: ModelOf
) -> None:
    raw_model["components"]["nps"]["window"] = MAX_WINDOW_SECONDS
    assert model_of(raw_model).component("nps").window_buckets == 90


def test_window_of_one_bucket_is_allowed(raw_model: dict[str, Any], model_of: ModelOf) -> None:
    raw_model["components"]["nps"]["window"] = "1d"
    assert model_of(raw_model).component("nps").window_buckets == 1


def test_description_is_optional(raw_model: dict[str, Any], model_of: ModelOf) -> None:
    del raw_model["components"]["nps"]["description"]
    del raw_model["description"]
    assert model_of(raw_model).component("nps").description == ""


def test_integer_weights_and_scores_become_floats(
    raw_model: dict[str, Any], model_of: ModelOf
) -> None:
    raw_model["components"]["nps"]["weight"] = 2
    m = model_of(raw_model)
    assert isinstance(m.component("nps").weight, float)
    assert all(isinstance(t.min_score, float) for t in m.tiers)


def test_two_tiers_and_custom_names(raw_model: dict[str, Any], model_of: ModelOf) -> None:
    raw_model["tiers"] = {
        "margin": 0,
        "levels": [
            {"name": "ok", "label": "OK", "min_score": 50},
            {"name": "at_risk", "label": "At risk", "min_score": 0},
        ],
    }
    m = model_of(raw_model)
    assert [t.name for t in m.tiers] == ["ok", "at_risk"]
    assert m.margin == 0.0


def test_single_component_model(raw_model: dict[str, Any], model_of: ModelOf) -> None:
    raw_model["components"] = {"nps": raw_model["components"]["nps"]}
    m = model_of(raw_model)
    assert [c.name for c in m.components] == ["nps"]
    assert m.max_window_buckets == 90


def test_bands_with_a_single_open_band(raw_model: dict[str, Any], model_of: ModelOf) -> None:
    raw_model["components"]["escalations"]["curve"] = {"bands": [{"score": 60}]}
    assert model_of(raw_model).component("escalations").curve == Bands((Band(None, 60.0),))


def test_version_is_kept_as_text(raw_model: dict[str, Any], model_of: ModelOf) -> None:
    raw_model["version"] = "2026.11"
    assert model_of(raw_model).version == "2026.11"


# --------------------------------------------------------------------------- bad model files


def _parent(raw: Any, path: str) -> tuple[Any, str | int]:
    """The container of the node at dotted ``path``, and the node's key in it."""
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, int(last) if isinstance(node, list) else last


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets the node at ``a.b.0.c`` to ``value``."""

    def mutate(raw: dict[str, Any]) -> None:
        node, key = _parent(raw, path)
        node[key] = value

    return mutate


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    """A mutation that removes the node at ``a.b.0.c``."""

    def mutate(raw: dict[str, Any]) -> None:
        node, key = _parent(raw, path)
        del node[key]

    return mutate


def _levels(*scores: float, names: tuple[str, ...] = ("green", "yellow", "red")) -> Any:
    return _set(
        "tiers.levels",
        [
            {"name": n, "label": n.title(), "min_score": s}
            for n, s in zip(names, scores, strict=True)
        ],
    )


BAD_MODELS = {
    # schema: the field is named with dots
    "string weight": (_set("components.nps.weight", "heavy"), "components.nps.weight"),
    "zero weight": (_set("components.nps.weight", 0), "components.nps.weight"),
    "negative weight": (_set("components.csat.weight", -1), "components.csat.weight"),
    "boolean weight": (_set("components.nps.weight", True), "components.nps.weight"),
    "typo in a component key": (_set("components.nps.wieght", 1), "components.nps.wieght"),
    "missing curve": (_del("components.nps.curve"), "components.nps.curve"),
    "missing signal": (_del("components.nps.signal"), "components.nps.signal"),
    "missing window": (_del("components.nps.window"), "components.nps.window"),
    "missing weight": (_del("components.nps.weight"), "components.nps.weight"),
    "window with a bad unit": (_set("components.nps.window", "3w"), "components.nps.window"),
    "window with a space": (_set("components.nps.window", "30 d"), "components.nps.window"),
    "window zero seconds": (_set("components.nps.window", 0), "components.nps.window"),
    "fractional window": (_set("components.nps.window", 1.5), "components.nps.window"),
    "linear without good": (
        _set("components.nps.curve", {"linear": {"bad": 1}}),
        "components.nps.curve",
    ),
    "unknown curve kind": (
        _set("components.nps.curve", {"log": {"base": 2}}),
        "components.nps.curve",
    ),
    "band score above 100": (
        _set("components.escalations.curve.bands.0.score", 101),
        "components.escalations.curve",
    ),
    "upper-case component name": (
        _set(
            "components.NPS",
            {
                "signal": "nps",
                "window": "90d",
                "weight": 1,
                "curve": {"linear": {"bad": 0, "good": 1}},
            },
        ),
        'components: "NPS" does not match',
    ),
    "no components": (_set("components", {}), "components"),
    "missing version": (_del("version"), "version"),
    "empty version": (_set("version", ""), "version"),
    "numeric version": (_set("version", 3), "version"),
    "missing bucket": (_del("bucket"), "bucket"),
    "bad bucket unit": (_set("bucket", "1w"), "bucket"),
    "missing tiers": (_del("tiers"), "tiers"),
    "missing margin": (_del("tiers.margin"), "tiers.margin"),
    "negative margin": (_set("tiers.margin", -1), "tiers.margin"),
    "one tier only": (
        _set("tiers.levels", [{"name": "all", "label": "All", "min_score": 0}]),
        "tiers.levels",
    ),
    "tier score above 100": (_levels(101, 40, 0), "tiers.levels.0.min_score"),
    "tier without label": (_del("tiers.levels.1.label"), "tiers.levels.1.label"),
    "unknown top-level key": (_set("colour", "blue"), "colour"),
    # compile-time checks: named just as precisely
    "unknown signal": (
        _set("components.nps.signal", "net_promoter"),
        "components.nps.signal: unknown signal 'net_promoter'",
    ),
    "window longer than 90 days": (
        _set("components.nps.window", "91d"),
        "components.nps.window: 7862400 s is longer than 90 days",
    ),
    "window longer than 90 days in hours": (
        _set("components.nps.window", "2161h"),
        "components.nps.window",
    ),
    "window not a multiple of the bucket": (
        _set("components.nps.window", "36h"),
        "components.nps.window: 129600 s is not a whole number",
    ),
    "window zero days": (_set("components.nps.window", "0d"), "components.nps.window"),
    "window shorter than the bucket": (
        _set("components.nps.window", "12h"),
        "components.nps.window",
    ),
    "bad equals good": (
        _set("components.nps.curve", {"linear": {"bad": 5, "good": 5}}),
        "components.nps.curve.linear: bad and good must differ",
    ),
    "bands out of order": (
        _set(
            "components.escalations.curve.bands",
            [{"upto": 1, "score": 40}, {"upto": 0, "score": 100}, {"score": 0}],
        ),
        "components.escalations.curve.bands: 'upto' must increase",
    ),
    "bands with equal bounds": (
        _set(
            "components.escalations.curve.bands",
            [{"upto": 1, "score": 40}, {"upto": 1, "score": 100}, {"score": 0}],
        ),
        "components.escalations.curve.bands: 'upto' must increase",
    ),
    "last band bounded": (
        _set(
            "components.escalations.curve.bands",
            [{"upto": 0, "score": 100}, {"upto": 1, "score": 0}],
        ),
        "components.escalations.curve.bands: every band but the last",
    ),
    "middle band open": (
        _set(
            "components.escalations.curve.bands",
            [{"upto": 0, "score": 100}, {"score": 40}, {"score": 0}],
        ),
        "components.escalations.curve.bands: every band but the last",
    ),
    "bucket of zero seconds": (_set("bucket", "0s"), "bucket: must be at least 1 second"),
    "tiers rising": (_levels(40, 70, 0), "tiers.levels: min_score must fall"),
    "tiers equal": (_levels(70, 70, 0), "tiers.levels: min_score must fall"),
    "worst tier above zero": (
        _levels(70, 40, 10),
        "tiers.levels: the worst tier must have min_score 0",
    ),
    "duplicate tier names": (
        _levels(70, 40, 0, names=("green", "green", "red")),
        "tiers.levels: tier names must be unique",
    ),
    "bad tier name": (_levels(70, 40, 0, names=("Green", "yellow", "red")), "tiers.levels.0.name"),
}


@pytest.mark.parametrize(("mutate", "named"), BAD_MODELS.values(), ids=BAD_MODELS.keys())
def test_bad_model_names_the_field(
    raw_model: dict[str, Any],
    model_of: ModelOf,
    mutate: Callable[[dict[str, Any]], None],
    named: str,
) -> None:
    mutate(raw_model)
    with pytest.raises(ConfigError) as caught:
        model_of(raw_model)
    message = str(caught.value)
    assert message.startswith("test model: ")
    assert named in message


def test_error_names_the_source_file(raw_model: dict[str, Any]) -> None:
    raw_model["components"]["nps"]["weight"] = "heavy"
    with pytest.raises(ConfigError, match=r"^models/acme\.yaml: components\.nps\.weight: "):
        parse_model(yaml.safe_dump(raw_model), source="models/acme.yaml")


def test_bad_file_on_disk_names_its_path(tmp_path: Path, raw_model: dict[str, Any]) -> None:
    raw_model["components"]["nps"]["signal"] = "nope"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw_model), "utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: components\.nps\.signal: unknown signal"):
        load_model(path)


def test_unknown_signal_lists_the_known_ones(raw_model: dict[str, Any], model_of: ModelOf) -> None:
    raw_model["components"]["nps"]["signal"] = "nope"
    with pytest.raises(ConfigError) as caught:
        model_of(raw_model)
    assert all(name in str(caught.value) for name in SIGNALS)


@pytest.mark.parametrize(
    "text",
    [
        "version: [unclosed",
        "components: {a: 1\n",
        "a: b: c",
        "\tversion: 1",
    ],
)
def test_invalid_yaml(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^m\.yaml: not valid YAML"):
        parse_model(text, source="m.yaml")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text", "42"])
def test_yaml_that_is_no_mapping(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^m\.yaml: \(top level\): "):
        parse_model(text, source="m.yaml")


def test_errors_are_config_errors_not_crashes(raw_model: dict[str, Any], model_of: ModelOf) -> None:
    # Every bad model above raised ConfigError; nothing else ever escapes parse_model.
    raw_model["components"]["nps"] = "not a mapping"
    with pytest.raises(ConfigError, match=r"components\.nps"):
        model_of(raw_model)


@pytest.mark.parametrize("margin", [15, 20, 50])
def test_a_margin_that_would_make_a_tier_unreachable_is_refused(
    raw_model: dict[str, Any], model_of: Callable[[dict[str, Any]], Model], margin: float
) -> None:
    raw_model["tiers"]["margin"] = margin  # tiers 70/40/0: bars 30 points apart
    with pytest.raises(ConfigError, match=r"tiers\.margin"):
        model_of(raw_model)


def test_a_margin_under_half_the_narrowest_gap_is_fine(
    raw_model: dict[str, Any], model_of: Callable[[dict[str, Any]], Model]
) -> None:
    raw_model["tiers"]["margin"] = 14.5
    assert model_of(raw_model).margin == 14.5
