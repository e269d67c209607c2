"""Hostile input for property-based tests: strategies shared by the unit tests of the
decode path and the integration tests of the pipeline."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

EVENT_FIELDS = {
    "login": ["user_id", "session_seconds"],
    "feature_use": ["user_id", "feature", "count"],
    "ticket": ["ticket_id", "status", "priority"],
    "survey": ["user_id", "kind", "score", "comment"],
    "account": ["segment", "seats_purchased", "plan", "arr", "renewal_date", "ts"],
}
BASE_FIELDS = ["event_id", "account_id", "ts", "user_id"]


def dumps(value: Any) -> bytes:
    # The stdlib writes what orjson refuses to: NaN/Infinity, 10**400, lone surrogates
    # (as \\ud800 escapes), so those reach the worker as a producer could send them.
    return json.dumps(value, allow_nan=True).encode()


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([10**400, -(10**400), 2**63, 2**64, -(2**63) - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "\ud800",
            "\udfff",
            "a\x00b",
            "\u202e",
            "x" * 5000,
            "2026-01-01T00:00:00+99:99",
            "2026-12-31T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=1100))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    return opener * depth + dumps(draw(scalars)) + closer * depth


@st.composite
def many_keys(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=100, max_value=3000))
    return {f"k{i}": i for i in range(count)}


@st.composite
def hostile_body(draw: st.DrawFn, kind: str, valid: dict[str, Any]) -> bytes:
    """A valid body of ``kind`` with some fields replaced, removed or added."""
    body = dict(valid)
    names = [*BASE_FIELDS, *EVENT_FIELDS[kind], "x", "extra field"]
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3)):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            body.pop(name, None)
        elif choice == 1:
            body[name] = draw(json_values)
        elif choice == 2:
            body[name] = draw(many_keys())
        else:  # spliced in as text: nesting deeper than any serializer writes
            text = dumps(body)
            return text[:-1] + b"," + dumps(name) + b":" + draw(deep_nesting()) + b"}"
    return dumps(body)


keys = (
    st.none()
    | st.binary(max_size=300)
    | st.sampled_from([b"acme", b"", b"\xff\xfe", b"acme\x00", b"a" * 129])
)
