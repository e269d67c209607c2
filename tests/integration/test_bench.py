"""The benchmark itself still runs: its quick mode, without the peers (they need the
bench extra). Figures are not checked here, only that every part measured something."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench import run


@pytest.mark.timeout(420)
def test_quick_benchmark_measures_every_part(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    results = run.main(["--quick", "--no-peers", "--out", str(out)])
    assert orjson.loads(out.read_bytes()) == orjson.loads(orjson.dumps(results))
    sizes = run.QUICK
    assert results["healthscore_10k"]["events"] == sizes.events_10k
    assert results["healthscore_1m"]["events"] == sizes.accounts_1m
    assert results["ceiling"]["events"] == sizes.events_10k
    assert results["latency"]["alerts"] > 0
    assert results["memory"]["mean_bytes"] > 0
    assert results["silent"]["accounts"] >= sizes.accounts_1m  # every account was due
    assert {t["name"] for t in results["targets"]} >= {"events_per_s_10k", "latency_p99_ms"}
