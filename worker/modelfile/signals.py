"""A model file's own signals (``signals:``): checked against the event and account
schemas, then built by ``worker.scoring.custom``.

Errors name the field (``signals.key_features.distinct.field: ...``) and what would be
right, so a typo stops the worker at start-up, not at the first event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.contracts import load_schema
from worker.errors import ConfigError
from worker.scoring import custom
from worker.scoring.signals import SIGNALS, Signal
from worker.scoring.vocabulary import VOCABULARY

_NUMERIC = frozenset({"integer", "number"})
_KINDS = ("count", "distinct", "ratio", "attribute")
_MEMBER_TYPES = frozenset({"string", "integer"})  # fields a distinct count may count


def custom_signals(raw: Mapping[str, Any] | None, source: str) -> dict[str, Signal]:
    """The built-in signals and the model file's own, by name."""
    signals = dict(SIGNALS)
    specs = raw or {}
    # Ratios last: their parts may be any other signal of the file.
    for name, spec in sorted(specs.items(), key=lambda item: "ratio" in item[1]):
        where = f"{source}: signals.{name}"
        if name in SIGNALS:
            raise ConfigError(f"{where}: {name!r} is a built-in signal; choose another name")
        signals[name] = _signal(name, spec, signals, where)
    return signals


def _signal(name: str, spec: Mapping[str, Any], known: Mapping[str, Signal], where: str) -> Signal:
    description = spec.get("description", "")
    kinds = [k for k in _KINDS if k in spec]
    if len(kinds) != 1:
        raise ConfigError(
            f"{where}: needs exactly one of {', '.join(_KINDS)}"
            + (f" (has {', '.join(kinds)})" if kinds else "")
        )
    if "count" in spec:
        body = spec["count"]
        event_type = _event_type(body["event"], f"{where}.count.event")
        fields = _fields(event_type)
        sum_field = body.get("sum")
        if sum_field is not None:
            _field(fields, sum_field, event_type, f"{where}.count.sum", _NUMERIC)
        test = _where(body.get("where") or {}, fields, event_type, f"{where}.count.where")
        return custom.count_signal(name, description, event_type, test, sum_field)
    if "distinct" in spec:
        body = spec["distinct"]
        event_type = _event_type(body["event"], f"{where}.distinct.event")
        fields = _fields(event_type)
        _field(fields, body["field"], event_type, f"{where}.distinct.field", _MEMBER_TYPES)
        test = _where(body.get("where") or {}, fields, event_type, f"{where}.distinct.where")
        return custom.distinct_signal(name, description, event_type, body["field"], test)
    if "ratio" in spec:
        parts = [_part(spec["ratio"][k], name, known, f"{where}.ratio.{k}") for k in ("of", "to")]
        return custom.ratio_signal(name, description, *parts)
    body = spec["attribute"]
    wanted = frozenset({"string"}) if body["as"] == "days_until" else _NUMERIC
    prop = _field(
        _properties("account"), body["field"], "account", f"{where}.attribute.field", wanted
    )
    if body["as"] == "days_until" and prop.get("format") != "date":
        raise ConfigError(f"{where}.attribute.field: {body['field']!r} is not a date")
    return custom.attribute_signal(name, description, body["field"], body["as"])


def _event_type(name: str, where: str) -> str:
    if name not in VOCABULARY:
        raise ConfigError(
            f"{where}: unknown event type {name!r} (known: {', '.join(sorted(VOCABULARY))})"
        )
    return name


def _fields(event_type: str) -> dict[str, Any]:
    return _properties(VOCABULARY[event_type].schema_name)


def _properties(schema: str) -> dict[str, Any]:
    properties: dict[str, Any] = load_schema(schema)["properties"]
    return properties


def _field(
    fields: Mapping[str, Any],
    name: str,
    owner: str,
    where: str,
    types: frozenset[str] | None = None,
) -> Mapping[str, Any]:
    """The schema of field ``name``, which must hold values of one of ``types``."""
    prop: Mapping[str, Any] | None = fields.get(name)
    if prop is None:
        raise ConfigError(
            f"{where}: {name!r} is not a field of {owner} "
            f"{'records' if owner == 'account' else 'events'} "
            f"(fields: {', '.join(sorted(fields))})"
        )
    kind = _kind(prop)
    if types is not None and kind not in types:
        raise ConfigError(
            f"{where}: {name!r} holds {kind} values, not {' or '.join(sorted(types))}"
        )
    return prop


def _kind(prop: Mapping[str, Any]) -> str:
    if "type" in prop:
        return str(prop["type"])
    if "enum" in prop:
        kinds = {type(v).__name__ for v in prop["enum"]}
        return "string" if kinds == {"str"} else "number"
    return "string"  # the shared ids ($ref to common.schema.json) are strings


def _where(
    spec: Mapping[str, Mapping[str, Any]], fields: Mapping[str, Any], event_type: str, where: str
) -> custom.Test | None:
    for name, conditions in spec.items():
        prop = _field(fields, name, event_type, f"{where}.{name}")
        numeric = _kind(prop) in _NUMERIC
        for op, operand in conditions.items():
            at = f"{where}.{name}.{op}"
            if op in ("gte", "lte") and not numeric:
                raise ConfigError(f"{at}: {name!r} is not a number")
            for value in operand if isinstance(operand, list) else [operand]:
                _check_value(prop, value, numeric, at)
    return custom.compile_where(spec)


def _check_value(prop: Mapping[str, Any], value: Any, numeric: bool, at: str) -> None:
    if "enum" in prop and value not in prop["enum"]:
        raise ConfigError(
            f"{at}: {value!r} is never a value of this field "
            f"(values: {', '.join(map(str, prop['enum']))})"
        )
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric != is_number:
        raise ConfigError(
            f"{at}: {value!r} is {'not ' if numeric else ''}a number, "
            f"the field's values are {'' if numeric else 'not '}numbers"
        )


def _part(name: str, own: str, known: Mapping[str, Signal], where: str) -> Signal:
    signal = known.get(name)
    if signal is None or name == own:
        raise ConfigError(
            f"{where}: unknown signal {name!r} (a ratio's parts are other "
            f"signals, built-in or counts, distinct counts and attributes "
            f"of this file)"
        )
    return signal
