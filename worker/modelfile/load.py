"""Model files: read, parsed from YAML, checked against ``schemas/model.schema.json``
and compiled into the plain data of ``worker.scoring.model``.

Errors name the offending field (``components.nps.curve.linear.good: ...``) so a
typo in a model file stops the worker at start-up with a message a CSM can act on.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from worker.contracts import first_error
from worker.errors import ConfigError
from worker.modelfile.signals import custom_signals
from worker.scoring.curves import Band, Bands, Curve, Linear, Percentile
from worker.scoring.model import UNKNOWN_TIER, Component, Model, Tier
from worker.scoring.signals import SIGNALS, Signal

MAX_WINDOW_SECONDS = 90 * 86400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def default_model_text() -> str:
    return resources.files("worker").joinpath("models", "default.yaml").read_text("utf-8")


def model_text(path: str | Path | None = None) -> tuple[str, str]:
    """A model file's text and the name errors give it; ``None`` or ``""``: the
    packaged default."""
    if not path:
        return default_model_text(), "default model"
    try:
        return Path(path).read_text("utf-8"), str(path)
    except OSError as exc:
        raise ConfigError(f"model file {path}: {exc.strerror}") from None


def load_model(path: str | Path | None = None) -> Model:
    """Load and check a model file's default model (segment models: ``segments``)."""
    text, source = model_text(path)
    return parse_model(text, source)


def parse_model(text: str, source: str = "model") -> Model:
    """A model file's text, checked and compiled. Checking is shared: a file of another
    top-level layout (several models in one) compiles the same checked data its way."""
    raw = checked(text, source)
    raw.pop("segments", None)
    raw.pop("lifecycle", None)
    return compile_model(raw, source)


def checked(text: str, source: str) -> dict[str, Any]:
    """The file as plain data, valid against the schema: what every layout compiles from."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    error = first_error("model", raw)
    if error is not None:
        pointer, message = error
        raise ConfigError(f"{source}: {_dotted(pointer)}: {message}")
    assert isinstance(raw, dict), "the schema admits only a mapping at the top"
    return raw


def parse_duration(value: str | int | float, field: str) -> int:
    if not isinstance(value, str):  # JSON Schema's "integer" also admits 86400.0
        return int(value)
    match = re.fullmatch(r"(\d+)([smhd])", value)
    if match is None:
        raise ConfigError(f"{field}: {value!r} is not a duration like 30d, 12h or 90s")
    return int(match.group(1)) * _UNITS[match.group(2)]


def compile_model(raw: dict[str, Any], source: str) -> Model:
    bucket = parse_duration(raw["bucket"], f"{source}: bucket")
    if bucket < 1:
        raise ConfigError(f"{source}: bucket: must be at least 1 second")
    signals = custom_signals(raw.get("signals"), source)
    components = tuple(
        _component(name, spec, bucket, f"{source}: components.{name}", signals)
        for name, spec in raw["components"].items()
    )
    tiers = tuple(
        Tier(t["name"], t["label"], float(t["min_score"])) for t in raw["tiers"]["levels"]
    )
    margin = float(raw["tiers"]["margin"])
    _check_tiers(tiers, margin, f"{source}: tiers")
    return Model(
        str(raw["version"]),
        bucket,
        tiers,
        margin,
        components,
        float(raw["tiers"].get("min_coverage", 0.0)),
        _data_gaps(raw, source),
    )


def _data_gaps(raw: dict[str, Any], source: str) -> tuple[tuple[str, int], ...]:
    gaps = raw.get("data_gaps") or {}
    known = frozenset().union(*(s.sources for s in SIGNALS.values()))
    for event_type in gaps:
        if event_type not in known:
            raise ConfigError(
                f"{source}: data_gaps.{event_type}: unknown event type "
                f"(known: {', '.join(sorted(known))})"
            )
    return tuple(
        sorted((t, parse_duration(v, f"{source}: data_gaps.{t}")) for t, v in gaps.items())
    )


def _component(
    name: str,
    spec: dict[str, Any],
    bucket: int,
    where: str,
    signals: Mapping[str, Signal] = SIGNALS,
) -> Component:
    signal = signals.get(spec["signal"])
    if signal is None:
        known = ", ".join(sorted(signals))
        raise ConfigError(f"{where}.signal: unknown signal {spec['signal']!r} (known: {known})")
    window = parse_duration(spec["window"], f"{where}.window")
    if window > MAX_WINDOW_SECONDS:
        raise ConfigError(f"{where}.window: {window} s is longer than 90 days")
    if window < bucket:
        raise ConfigError(f"{where}.window: {window} s is shorter than one {bucket} s bucket")
    if window % bucket:
        raise ConfigError(f"{where}.window: {window} s is not a whole number of {bucket} s buckets")
    trend = spec.get("trend")
    if trend is not None:
        _check_trend(signal, window, f"{where}.trend")
    curve = _curve(spec["curve"], f"{where}.curve")
    return Component(
        name,
        signal,
        window // bucket,
        float(spec["weight"]),
        curve,
        spec.get("description", ""),
        spec.get("silence", "signal"),
        trend,
    )


def _check_trend(signal: Signal, window: int, where: str) -> None:
    """A trend compares with the window before its own, whose sums the windows know only
    for counters: a distinct set keeps each member's last-seen time, not when else."""
    if signal.distinct:
        raise ConfigError(
            f"{where}: signal {signal.name!r} counts distinct {', '.join(sorted(signal.distinct))}"
            ", and a distinct count of the previous window is not known (only each member's"
            " last-seen time is kept); use a signal that counts events"
        )
    if not signal.counters:
        raise ConfigError(
            f"{where}: signal {signal.name!r} reads no event counts, so it has no "
            "previous window to compare with; use a signal that counts events"
        )
    if 2 * window > MAX_WINDOW_SECONDS:
        raise ConfigError(
            f"{where}: a trend reads its window and the one before it, "
            f"{2 * window} s in all, longer than 90 days"
        )


def _curve(spec: dict[str, Any], where: str) -> Curve:
    if "linear" in spec:
        bad, good = float(spec["linear"]["bad"]), float(spec["linear"]["good"])
        if bad == good:
            raise ConfigError(f"{where}.linear: bad and good must differ")
        return Linear(bad, good)
    if "percentile" in spec:  # the schema allows only better: higher | lower
        return Percentile(spec["percentile"].get("better", "higher"))
    bands = tuple(Band(b.get("upto"), float(b["score"])) for b in spec["bands"])
    bounds = [b.upto for b in bands[:-1] if b.upto is not None]
    if len(bounds) != len(bands) - 1 or bands[-1].upto is not None:
        raise ConfigError(f"{where}.bands: every band but the last needs 'upto'; the last none")
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise ConfigError(f"{where}.bands: 'upto' must increase")
    return Bands(bands)


def _check_tiers(tiers: tuple[Tier, ...], margin: float, where: str) -> None:
    scores = [t.min_score for t in tiers]
    if any(a <= b for a, b in itertools.pairwise(scores)):
        raise ConfigError(f"{where}.levels: min_score must fall from the best tier to the worst")
    if scores[-1] != 0:
        raise ConfigError(f"{where}.levels: the worst tier must have min_score 0")
    if UNKNOWN_TIER.name in {t.name for t in tiers}:
        raise ConfigError(f"{where}.levels: {UNKNOWN_TIER.name!r} is reserved for too little data")
    if len({t.name for t in tiers}) != len(tiers):
        raise ConfigError(f"{where}.levels: tier names must be unique")
    # Every tier must stay reachable: entering it takes min_score + margin, and
    # the best one's bar must still be a possible score.
    narrowest = min(a - b for a, b in itertools.pairwise([100.0, *scores]))
    if margin * 2 >= narrowest and len(tiers) > 1:
        raise ConfigError(
            f"{where}.margin: {margin:g} is too wide for tiers "
            f"{narrowest:g} points apart (must be under half of that)"
        )


def _dotted(pointer: str) -> str:
    parts = [p for p in pointer.split("/") if p]
    return ".".join(parts) or "(top level)"
