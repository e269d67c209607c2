"""The JSON Schemas of ``schemas/``, compiled once into fast validators.

The schema files are the contract with producers and consumers; the worker
validates against the very same files (shipped inside the package), so the
documentation and the behaviour cannot disagree.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jsonschema_rs
import orjson

SCHEMA_NAMES = (
    "common",
    "login",
    "feature_use",
    "ticket",
    "survey",
    "account",
    "override",
    "alert",
    "deadletter",
    "model",
    "datagap",
    "outcome",
)


def load_schema(name: str) -> dict[str, Any]:
    text = resources.files("worker").joinpath("schemas", f"{name}.schema.json").read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    return schema


@functools.cache
def _registry() -> Any:
    return jsonschema_rs.Registry(
        [(load_schema(name)["$id"], load_schema(name)) for name in SCHEMA_NAMES]
    )


@functools.cache
def validator(name: str) -> Any:
    """A compiled draft 2020-12 validator for ``schemas/<name>.schema.json``."""
    return jsonschema_rs.Draft202012Validator(
        load_schema(name), registry=_registry(), validate_formats=True
    )


# jsonschema_rs' error iterator gives up on nesting this deep (its ``is_valid`` does not).
_TOO_DEEP = "Recursion limit reached"


def first_error(name: str, instance: Any) -> tuple[str, str] | None:
    """``(json_pointer, message)`` of the first violation, or None when valid."""
    try:
        return _first_error(name, instance)
    except ValueError as exc:
        if _TOO_DEEP not in str(exc):
            raise
        return _deepest_field(
            instance
        ), f"nested {_depth(instance)} levels deep, too deep to validate"


def _deepest_field(instance: Any) -> str:
    """Pointer of the top-level field holding the deepest nesting ("" = the whole document)."""
    if not isinstance(instance, dict) or not instance:
        return ""
    name = max(instance, key=lambda k: _depth(instance[k]))
    return "/" + str(name).replace("~", "~0").replace("/", "~1")


def _depth(value: Any) -> int:
    # A loop, not recursion: the value may be nested deeper than Python's recursion limit.
    depth, level = 0, [value]
    while level := [item for item in level if isinstance(item, list | dict)]:
        depth += 1
        level = [v for item in level for v in (item.values() if isinstance(item, dict) else item)]
    return depth


def _first_error(name: str, instance: Any) -> tuple[str, str] | None:
    for error in validator(name).iter_errors(instance):
        path = list(error.instance_path)
        # A missing or unexpected property is the field to blame, not its parent.
        kind = error.kind.as_dict()
        if "property" in kind:
            path.append(kind["property"])
        elif kind.get("unexpected"):
            path.append(kind["unexpected"][0])
        # RFC 6901: "" is the whole document; "~" and "/" in names are escaped.
        pointer = "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
        return pointer, error.message
    return None
