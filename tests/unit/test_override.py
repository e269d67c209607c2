"""Overrides: the pure state fold, the tier decision under an override, and decoding."""

from __future__ import annotations

import contextlib
import functools
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.contracts import validator
from worker.errors import BadInput, Reason
from worker.events.decode import Decoder
from worker.events.types import Override, SourceRef
from worker.modelfile import load_model
from worker.notify.format import alert_message
from worker.scoring import override as ov
from worker.scoring.model import Model
from worker.scoring.rollup import ComponentScore, Scorecard
from worker.scoring.tierchange import Published
from worker.timefmt import rfc3339

T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
DAY = 86400.0


def body(
    override_id: str = "o-1", *, kind: str = "pin", days: float = 7, **fields: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "account_id": "acme",
        "override_id": override_id,
        "kind": kind,
        "reason": "renewal call went well",
        "author": "dana@example.com",
        "set_at": rfc3339(T0),
        "expires_at": rfc3339(T0 + days * DAY),
    }
    if kind == "pin":
        out["tier"] = fields.pop("tier", "green")
    else:
        out["component"] = fields.pop("component", "nps")
        out["subscore"] = fields.pop("subscore", 80.0)
    return {**out, **fields}


def _at(
    records: list[tuple[int, dict[str, Any] | None]], at: float
) -> list[tuple[int, dict[str, Any] | None, float]]:
    """Records with their timestamp, all at ``at``."""
    return [(offset, value, at) for offset, value in records]


def test_a_set_override_is_active_until_it_expires() -> None:
    state, events = ov.receive(None, _at([(5, body())], T0))
    assert state is not None
    assert events == ["set"]
    assert state.active is not None
    assert state.active.tier == "green"
    assert state.fence == 5
    assert ov.expire(state, T0 + 7 * DAY - 1) is None
    expired = ov.expire(state, T0 + 7 * DAY)
    assert expired is not None
    assert expired.active is None
    assert [(p.override.override_id, p.ended) for p in expired.history] == [("o-1", "expired")]


def test_a_redelivered_record_changes_nothing() -> None:
    state, _ = ov.receive(None, _at([(5, body()), (6, None)], T0))
    assert state is not None
    assert state.active is None
    again, events = ov.receive(state, _at([(5, body()), (6, None)], T0 + 10))
    assert again is None
    assert events == []


def test_replaced_cleared_and_edited_go_to_the_history_as_such() -> None:
    state, _ = ov.receive(
        None,
        _at(
            [(1, body("a")), (2, body("a", tier="yellow")), (3, body("b", tier="red")), (4, None)],
            T0,
        ),
    )
    assert state is not None
    assert state.active is None
    # the same id again is an edit in place: one entry for "a", replaced by "b"
    assert [(p.override.override_id, p.override.tier, p.ended) for p in state.history] == [
        ("b", "red", "cleared"),
        ("a", "yellow", "replaced"),
    ]


def test_an_override_replaced_after_its_expiry_counts_as_expired() -> None:
    state, _ = ov.receive(None, _at([(1, body("a", days=1))], T0))
    later, _ = ov.receive(state, _at([(2, body("b"))], T0 + 2 * DAY))
    assert later is not None
    assert [(p.ended, p.ended_at) for p in later.history] == [("expired", T0 + DAY)]


def test_the_history_is_bounded() -> None:
    records = [(i, body(f"o-{i}")) for i in range(ov.HISTORY + 5)]
    state, _ = ov.receive(None, _at(records, T0))
    assert state is not None
    assert len(state.history) == ov.HISTORY
    assert state.history[0].override.override_id == f"o-{ov.HISTORY + 3}"


def test_the_state_survives_its_json() -> None:
    state, _ = ov.receive(None, _at([(1, body("a", kind="adjust")), (2, body("b"))], T0))
    assert state is not None
    assert ov.OverrideState.from_dict(orjson.loads(orjson.dumps(state.as_dict()))) == state


def _card(model: Model, subscores: dict[str, float]) -> Scorecard:
    return Scorecard(
        {n: ComponentScore(1.0, s, model.component(n).weight) for n, s in subscores.items()}
    )


def _published(tier: str, score: float, mark: str | None = None) -> Published:
    return Published(tier, score, 4, {}, ovr=mark)


def test_a_pin_sets_the_tier_and_keeps_the_score(model: Model) -> None:
    card = _card(model, {"nps": 90.0})
    pin = ov.ActiveOverride.of(body(tier="red"))
    change = ov.decide(model, card, _published("green", 90.0), pin)
    assert change is not None
    assert change.tier == "red"
    assert change.score == 90.0
    assert change.seq == 5
    assert ov.decide(model, card, _published("red", 90.0, "o-1"), pin) is None


def test_an_adjust_replaces_one_sub_score(model: Model) -> None:
    card = _card(model, {"nps": 10.0, "csat": 10.0})
    adjust = ov.ActiveOverride.of(body(kind="adjust", component="nps", subscore=100.0))
    change = ov.decide(model, card, _published("red", 10.0), adjust)
    assert change is not None
    assert change.tier == "yellow"
    assert change.scorecard.components["nps"].subscore == 100.0
    # a component without data stays without: an adjustment does not invent data
    assert ov.adjusted(_card(model, {"csat": 10.0}), adjust).components.keys() == {"csat"}


def test_hysteresis_does_not_hold_a_tier_an_override_published(model: Model) -> None:
    card = _card(model, {"nps": 68.0})  # inside green's margin: hysteresis keeps green
    assert ov.decide(model, card, _published("green", 68.0), None) is None
    ended = ov.decide(model, card, _published("green", 68.0, "o-1"), None)
    assert ended is not None
    assert ended.tier == "yellow"


# Decoding


def _decoder(model: Model) -> Decoder:
    return Decoder(
        {},
        "accounts",
        4096,
        300.0,
        overrides_topic="overrides",
        tiers=[t.name for t in model.tiers],
        components=[c.name for c in model.components],
    )


SOURCE = SourceRef("overrides", 0, 7)


@functools.cache
def _default_decoder() -> Decoder:
    return _decoder(load_model())


def _decode(model: Model, value: dict[str, Any] | None, key: bytes = b"acme") -> Override:
    raw = None if value is None else orjson.dumps(value)
    record = _decoder(model).decode(SOURCE, key, raw, T0)
    assert isinstance(record, Override)
    return record


def test_an_override_and_a_tombstone_decode(model: Model) -> None:
    assert _decode(model, body()).body == body()
    assert _decode(model, None) == Override("acme", None, SOURCE)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({k: v for k, v in body().items() if k != "expires_at"}, ""),
        (body(reason=""), "/reason"),
        (body(reason="   "), "/reason"),
        ({k: v for k, v in body().items() if k != "author"}, ""),
        (body(days=366), "/expires_at"),
        (body(days=-1), "/expires_at"),
        (body(tier="platinum"), "/tier"),
        (body(kind="adjust", component="vibes"), "/component"),
        (body(kind="adjust", subscore=101), "/subscore"),
        ({**body(), "component": "nps"}, ""),
    ],
)
def test_a_bad_override_is_refused(model: Model, value: dict[str, Any], field: str) -> None:
    with pytest.raises(BadInput) as caught:
        _decode(model, value)
    assert caught.value.reason in (Reason.SCHEMA_VIOLATION, Reason.TIMESTAMP_OUT_OF_RANGE)
    if field:
        assert caught.value.field == field


def test_the_key_must_be_the_account(model: Model) -> None:
    with pytest.raises(BadInput) as caught:
        _decode(model, body(), key=b"globex")
    assert caught.value.reason is Reason.BAD_KEY


TIMES = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())


@given(
    st.dictionaries(st.sampled_from(sorted(body())), st.text() | st.integers() | st.none() | TIMES)
)
def test_hostile_overrides_only_ever_raise_bad_input(junk: dict[str, Any]) -> None:
    value = {**body(), **junk}
    with contextlib.suppress(BadInput):
        _default_decoder().decode(SOURCE, b"acme", json.dumps(value).encode(), T0)


# The alert under an override


def test_an_alert_under_an_override_is_valid_and_says_so() -> None:
    alert = {
        "alert_id": "0" * 32,
        "account_id": "acme",
        "segment": None,
        "previous_tier": "green",
        "tier": "red",
        "tier_label": "Requires attention",
        "previous_score": 90.0,
        "score": 90.0,
        "triggering_component": None,
        "components": {},
        "cause": {
            "kind": "override",
            "event_id": None,
            "event_type": None,
            "topic": "overrides",
            "partition": 0,
            "offset": 7,
        },
        "override": ov.alert_field(ov.ActiveOverride.of(body(tier="red"))),
        "delivery": "live",
        "model_version": "x",
        "ts": rfc3339(T0),
        "seq": 2,
    }
    assert validator("alert").is_valid(alert)
    assert "override by dana@example.com" in alert_message(alert, None, "")["text"]


def test_a_cleared_or_replaced_override_ends_at_its_records_time() -> None:
    # Not at the clock of whoever applies it: a replay must write the live history.
    state, _ = ov.receive(None, [(1, body("a"), T0), (2, body("b"), T0 + 60), (3, None, T0 + 120)])
    assert state is not None
    assert [(p.ended, p.ended_at) for p in state.history] == [
        ("cleared", T0 + 120),
        ("replaced", T0 + 60),
    ]
