"""The model file read again while running: unchanged, bad, a new bucket, good."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from worker.metrics import Metrics
from worker.modelfile import default_model_text
from worker.runtime.modelwatch import ModelWatch, file_source, load


def _watch(tmp_path: Path) -> tuple[Path, ModelWatch, Metrics]:
    path = tmp_path / "model.yaml"
    path.write_text(default_model_text(), "utf-8")
    metrics = Metrics()
    return (
        path,
        ModelWatch(file_source(str(path)), load(file_source(str(path))), 0, metrics),
        metrics,
    )


def _count(metrics: Metrics, result: str) -> float:
    return (
        metrics.registry.get_sample_value("healthscore_model_reloads_total", {"result": result})
        or 0.0
    )


def test_an_unchanged_file_is_not_parsed_again(tmp_path: Path) -> None:
    _, watch, metrics = _watch(tmp_path)
    assert not watch.due()  # 0 s: only when asked
    watch.asked = True
    assert watch.due()
    assert watch.check() is None
    assert not watch.due()
    assert _count(metrics, "applied") == _count(metrics, "rejected") == 0


def test_a_bad_file_is_rejected_once_with_the_field_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, watch, metrics = _watch(tmp_path)
    path.write_text(default_model_text().replace("weight: 1.25", "weight: -1"), "utf-8")
    with caplog.at_level(logging.ERROR):
        assert watch.check() is None
        assert watch.check() is None  # the same bytes: not parsed, not logged again
    assert _count(metrics, "rejected") == 1
    [line] = [r.getMessage() for r in caplog.records]
    assert "model default-2026.11 goes on" in line
    assert "components.escalations.weight" in line
    assert watch.running.models.default.version == "default-2026.11"


def test_a_new_bucket_needs_a_replay(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, watch, metrics = _watch(tmp_path)
    path.write_text(default_model_text().replace("bucket: 1d", "bucket: 1h"), "utf-8")
    with caplog.at_level(logging.ERROR):
        assert watch.check() is None
    assert "bucket: cannot change" in caplog.text
    assert _count(metrics, "rejected") == 1


def test_a_good_file_is_applied_and_shown(tmp_path: Path) -> None:
    path, watch, metrics = _watch(tmp_path)
    old = watch.running.fingerprint
    path.write_text(
        default_model_text().replace("version: default-2026.11", "version: v2"), "utf-8"
    )
    loaded = watch.check()
    assert loaded is not None
    assert loaded.models.default.version == "v2"
    assert loaded.fingerprint != old
    assert watch.running is loaded
    assert _count(metrics, "applied") == 1
    info = metrics.registry.get_sample_value(
        "healthscore_model_info", {"version": "v2", "fingerprint": loaded.fingerprint}
    )
    assert info == 1
    assert (
        metrics.registry.get_sample_value(
            "healthscore_model_info", {"version": "default-2026.11", "fingerprint": old}
        )
        is None
    )


def test_a_missing_file_is_read_again_once_back(tmp_path: Path) -> None:
    path, watch, metrics = _watch(tmp_path)
    text = path.read_text("utf-8")
    path.unlink()
    assert watch.check() is None
    assert _count(metrics, "rejected") == 1
    path.write_text(text.replace("version: default-2026.11", "version: back"), "utf-8")
    loaded = watch.check()
    assert loaded is not None
    assert loaded.models.default.version == "back"
