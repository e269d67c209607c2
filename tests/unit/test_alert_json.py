"""The typed alert and published tier give the very bytes the dict-built ones gave.

``golden/alerts.jsonl`` and ``golden/published.jsonl`` were written by the code that
built both as dicts; consumers (and the outbox, and a replay's seeding) read those
bytes, key order included."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from worker.alerts import REPLAY, WINDOW_EXPIRY, Cause, build_alert, from_json, to_json
from worker.events.types import AccountUpdate, Event, SourceRef
from worker.scoring.mode import Mode
from worker.scoring.model import Model
from worker.scoring.rollup import score_components
from worker.scoring.tierchange import Published, decide, snapshot
from worker.windows import published as published_tier

GOLDEN = Path(__file__).parent / "golden"
NOW = 1768478400.0  # 2026-01-15T12:00:00Z
EVENT = Event("ticket", "evt-7", "acme", NOW, {}, SourceRef("events.ticket", 3, 99))
UPDATE = AccountUpdate("acme", {"seats_purchased": 5}, SourceRef("accounts", 1, 12))
GREEN = {"login_frequency": 20, "escalations": 0, "nps": 50}
RED = {"login_frequency": 18, "escalations": 2, "csat": 2.5}
YELLOW = {"login_frequency": 6.5, "escalations": 1, "nps": 10, "csat": 3.75}

Step = tuple[Mapping[str, float], Cause, Mode, str | None, float]
CHAINS: list[list[Step]] = [
    [
        (GREEN, Cause.of(EVENT), Mode.LIVE, "enterprise", NOW),  # first score
        (RED, Cause.of(EVENT), Mode.LIVE, "enterprise", NOW + 0.25),  # tier down
        (GREEN, Cause.of(UPDATE), Mode.LIVE, "smb", NOW + 3600.5),  # tier up, by attributes
        (YELLOW, WINDOW_EXPIRY, Mode.LIVE, None, NOW + 86400),
    ],  # a silent rescore
    [
        (RED, Cause.of(EVENT), Mode.CATCH_UP, None, NOW - 1e6),  # catch-up delivery
        (GREEN, REPLAY, Mode.CATCH_UP, None, NOW + 0.001),
    ],  # a replay's catch-up
    [
        ({"escalations": 0}, Cause.of(UPDATE), Mode.LIVE, "", NOW),
        ({"escalations": 0, "support_tickets": 8}, Cause.of(EVENT), Mode.LIVE, "x", NOW),
    ],
    [
        ({"escalations": 2, "nps": -20}, Cause.of(EVENT), Mode.LIVE, None, NOW),
        ({"escalations": 2, "nps": 50, "csat": 4.5}, WINDOW_EXPIRY, Mode.LIVE, None, NOW),
    ],
    [
        ({"escalations": 0, "csat": 2.5}, Cause.of(EVENT), Mode.LIVE, None, NOW),
        ({"escalations": 0}, Cause.of(EVENT), Mode.LIVE, None, NOW),
    ],  # the trigger vanished
]


def typed_path(model: Model) -> tuple[list[bytes], list[bytes]]:
    """Each chain as the worker runs it: the published tier back from Redis each time."""
    alerts, published = [], []
    for chain in CHAINS:
        pub: Published | None = None
        for values, cause, mode, segment, now in chain:
            change = decide(model, score_components(model, values), pub)
            assert change is not None, values
            alerts.append(
                to_json(build_alert(model, "acme", segment, change, cause, now, mode=mode))
            )
            published.append(published_tier.encode(snapshot(change)))
            pub = published_tier.decode(published[-1])
    return alerts, published


def golden(name: str) -> list[bytes]:
    return (GOLDEN / name).read_bytes().splitlines()


def test_alerts_are_the_bytes_the_dict_built_ones_were(model: Model) -> None:
    """The hints (``recovery``, added since) only come after every key there was."""
    alerts, _ = typed_path(model)
    assert len(alerts) == len(golden("alerts.jsonl"))
    for got, expected in zip(alerts, golden("alerts.jsonl"), strict=True):
        assert got.startswith(expected[:-1])
        assert got == expected or got[len(expected) - 1 :].startswith(b',"recovery":{')


def test_published_tiers_are_the_bytes_the_dict_built_ones_were(model: Model) -> None:
    _, published = typed_path(model)
    for got, expected in zip(published, golden("published.jsonl"), strict=True):
        assert got == expected


@pytest.mark.parametrize("line", golden("alerts.jsonl"), ids=lambda b: b[:20].decode())
def test_an_alert_read_back_from_the_outbox_is_sent_unchanged(line: bytes) -> None:
    alert = from_json(line)
    assert to_json(alert) == line
    assert from_json(to_json(alert)) == alert


@pytest.mark.parametrize("line", golden("published.jsonl"), ids=lambda b: b[:20].decode())
def test_a_published_tier_read_back_is_written_unchanged(line: bytes) -> None:
    assert published_tier.encode(published_tier.decode(line)) == line
