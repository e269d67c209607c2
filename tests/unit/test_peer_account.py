"""The peers' per-account document (``bench.peers.account``) and their own measurement
(``bench.peers.progress``): rescoring once per batch ends where rescoring per event
does, and a peer that counts a batch at a time is timed and reported like one that
counts events."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from bench.data import events
from bench.peers import account
from bench.peers.progress import Progress, read, read_scores
from bench.peers.scoring import Parsed, Scorer

SOURCE = ("events.login", 0, 0)


def _parsed(scorer: Scorer, n: int) -> list[Parsed]:
    return [scorer.parse(r.event_type, r.value) for r in events(n, 1, seed=3, spread_days=20)]


def test_one_rescore_per_batch_ends_on_the_per_event_score() -> None:
    scorer, now = Scorer(), time.time()
    now_bucket = scorer.now_bucket(now)
    per_event, batched = account.new_doc(), account.new_doc()
    parsed = _parsed(scorer, 60)
    for event in parsed:
        assert account.apply(scorer, per_event, event, now_bucket)
        account.rescore(scorer, per_event, event, SOURCE, now, now_bucket)
    for event in parsed:
        account.apply(scorer, batched, event, now_bucket)
    scored = account.rescore(scorer, batched, parsed[-1], SOURCE, now, now_bucket)
    assert scored.score == pytest.approx(per_event["score"], rel=1e-9)
    assert scored.alert is not None  # a first score always publishes
    assert account.tier(batched) == scored.alert.tier


def test_an_event_older_than_every_window_changes_nothing() -> None:
    scorer = Scorer()
    event = _parsed(scorer, 1)[0]
    late_bucket = event.bucket + scorer.model.max_window_buckets + 1
    doc = account.new_doc()
    assert not account.apply(scorer, doc, event, late_bucket)
    assert doc == account.new_doc()


def test_a_batch_counts_its_events_and_the_scores_come_before_the_result(tmp_path: Path) -> None:
    result, scores = tmp_path / "result.json", tmp_path / "scores.json"
    progress = Progress(result, expect=5, scores=scores)
    progress.started()
    progress.scored("a", 71.5, "healthy")
    progress.processed(alerts=1, events=3, rescores=1)
    assert not scores.exists()
    progress.processed(events=2, rescores=1)
    data = read(result)
    assert data is not None
    assert (data["events"], data["alerts"], data["rescores"]) == (5, 1, 2)
    assert data["seconds"] >= 0
    assert data["cpu_seconds"] >= 0
    assert read_scores(scores) == {"a": (71.5, "healthy")}
    assert orjson.loads(result.read_bytes())["final"] is False
