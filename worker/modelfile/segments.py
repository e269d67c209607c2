"""Loading a model file with its segment models into a ``ModelSet``.

The top level of the file is the default model, exactly as a file without
segments; ``segments:`` maps a segment name to what its model changes: ``tiers``
replaced as a whole, ``components`` merged by name (the fields given replace the
default component's, ``null`` removes it, a new name adds one). ``version`` and
``bucket`` are the file's: every model's windows are in buckets of one size.
``lifecycle.onboarding`` names the segment model that scores accounts created less
than ``days`` ago (``scoring.segments.Onboarding``).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

from worker.errors import ConfigError
from worker.modelfile.load import checked, compile_model, model_text
from worker.scoring.segments import ModelSet, Onboarding

_NEW_COMPONENT_FIELDS = ("signal", "window", "weight", "curve")


def load_models(path: str | Path | None = None) -> ModelSet:
    """Load and check a model file; ``None`` or ``""`` loads the packaged default."""
    text, source = model_text(path)
    return parse_models(text, source)


def parse_models(text: str, source: str = "model") -> ModelSet:
    raw = checked(text, source)
    segments = raw.pop("segments", None) or {}
    lifecycle = raw.pop("lifecycle", None) or {}
    default = compile_model(raw, source)
    models = {}
    for name, spec in segments.items():
        merged = merge_segment(raw, spec, f"{source}: segments.{name}")
        models[name] = replace(compile_model(merged, f"{source}: segments.{name}"), segment=name)
    return ModelSet(default, models, _onboarding(lifecycle.get("onboarding"), models, source))


def _onboarding(
    spec: dict[str, Any] | None, models: dict[str, Any], source: str
) -> Onboarding | None:
    if spec is None:
        return None
    if spec["model"] not in models:
        known = ", ".join(sorted(models)) or "none"
        raise ConfigError(
            f"{source}: lifecycle.onboarding.model: {spec['model']!r} is not a "
            f"segment model of this file (segments: {known})"
        )
    return Onboarding(int(spec["days"]), spec["model"])


def merge_segment(base: dict[str, Any], spec: dict[str, Any], where: str) -> dict[str, Any]:
    """The raw default model ``base`` with a segment's overrides ``spec`` applied (pure)."""
    merged = copy.deepcopy(base)
    if "tiers" in spec:
        merged["tiers"] = copy.deepcopy(spec["tiers"])
    if "description" in spec:
        merged["description"] = spec["description"]
    components = merged["components"]
    for name, override in (spec.get("components") or {}).items():
        if override is None:
            if components.pop(name, None) is None:
                raise ConfigError(
                    f"{where}.components.{name}: removes a component the "
                    "default model does not have"
                )
        elif name in components:
            components[name] = {**components[name], **copy.deepcopy(override)}
        else:
            missing = [f for f in _NEW_COMPONENT_FIELDS if f not in override]
            if missing:
                raise ConfigError(
                    f"{where}.components.{name}: a component the default model "
                    f"does not have needs {', '.join(missing)}"
                )
            components[name] = copy.deepcopy(override)
    if not components:
        raise ConfigError(f"{where}.components: removes every component")
    return merged
