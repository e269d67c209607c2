"""The event vocabulary is the one home of event types, counters and distinct sets:
signals, settings, the decoder and the planner take them from it."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import orjson
import pytest

from tests import vocab
from worker.errors import BadInput, ConfigError, Reason
from worker.events.decode import Decoder
from worker.events.types import SourceRef
from worker.scoring.signals import ATTRIBUTE_SIGNALS, SIGNALS, signal
from worker.scoring.vocabulary import VOCABULARY, counters, distinct_sets, feeding
from worker.settings import Settings
from worker.windows.plan import Planner
from worker.windows.plan import distinct_sets as model_sets

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
NOW = time.time()


def test_signals_are_fed_by_the_types_that_add_to_what_they_read() -> None:
    usage = {"login", "feature_use"}
    assert {name: set(s.sources) for name, s in SIGNALS.items()} == {
        "logins_per_active_user": usage,
        "active_user_share": usage,
        "logins": {"login"},
        "distinct_features": {"feature_use"},
        "avg_session_minutes": {"login"},
        "tickets_opened": {"ticket"},
        "escalations": {"ticket"},
        "nps": {"survey"},
        "csat_avg": {"survey"},
    }
    assert {"active_user_share"} == ATTRIBUTE_SIGNALS


def test_a_signal_reading_what_no_type_feeds_is_refused() -> None:
    with pytest.raises(ConfigError, match="no event type feeds logins, pages"):
        signal(
            "typo",
            "",
            lambda w, _: 0.0,
            counters=frozenset({"logins"}),
            distinct=frozenset({"pages"}),
        )


def test_every_type_has_its_schema_file_and_names_fit_keys_and_settings() -> None:
    topic_settings = {
        f.name.removeprefix("topic_")
        for f in dataclasses.fields(Settings)
        if f.name.startswith("topic_")
    }
    for name, event_type in VOCABULARY.items():
        assert (SCHEMAS / f"{event_type.schema_name}.schema.json").is_file()
        # a type's own topic setting is topic_<type>: no type may take another's
        assert name in {"login", "feature_use", "ticket", "survey"} or name not in topic_settings
    for name in (*VOCABULARY, *counters(), *distinct_sets()):
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name)  # in Redis keys and fields


def test_a_type_added_to_the_vocabulary_has_a_default_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vocab.add_page_views(monkeypatch)
    settings = Settings(topic_login="prod.login")
    assert settings.event_topics == {
        "prod.login": "login",
        "events.feature_use": "feature_use",
        "events.ticket": "ticket",
        "events.survey": "survey",
        vocab.TOPIC: vocab.NAME,
    }
    assert "pv" in counters()
    assert "pages" in distinct_sets()
    assert feeding(frozenset(), frozenset({"pages"})) == {vocab.NAME}


def _decoder(settings: Settings) -> Decoder:
    return Decoder(settings.event_topics, settings.topic_accounts, 65536, 300.0)


def test_a_type_added_to_the_vocabulary_is_decoded_against_its_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vocab.add_page_views(monkeypatch)
    decoder = _decoder(Settings())
    source = SourceRef(vocab.TOPIC, 0, 7)
    body = {
        "event_id": "p1",
        "account_id": "acme",
        "ts": "2026-11-22T09:30:00+00:00",
        "page": "home",
    }
    event = decoder.decode(source, b"acme", orjson.dumps(body), NOW)
    assert (event.type, event.body["page"]) == (vocab.NAME, "home")
    with pytest.raises(BadInput) as caught:
        decoder.decode(source, b"acme", orjson.dumps({**body, "pages": "home"}), NOW)
    assert (caught.value.reason, caught.value.field) == (Reason.SCHEMA_VIOLATION, "/pages")


def test_the_planner_counts_a_type_added_to_the_vocabulary(monkeypatch: pytest.MonkeyPatch) -> None:
    vocab.add_page_views(monkeypatch)
    model = vocab.model_with_pages()
    assert model_sets(model) == ("features", "pages", "users")
    body = {
        "event_id": "p1",
        "account_id": "acme",
        "ts": "2026-11-22T09:30:00+00:00",
        "user_id": "u1",
        "page": "home",
        "seconds": 12,
    }
    event = _decoder(Settings()).decode(
        SourceRef(vocab.TOPIC, 0, 7), b"acme", orjson.dumps(body), NOW
    )
    plan = Planner(model).plan("acme", [event], int(NOW // model.bucket_seconds))
    bucket = int(event.ts // model.bucket_seconds)
    assert len(plan.events) == 1
    assert plan.counters == {(bucket, "pv"): 1.0}  # pv_sec: the model reads no signal of it
    assert plan.members == {"pages": {"home": event.ts}}  # not users: the type does not feed them
    assert plan.touched == {"page_breadth"}
