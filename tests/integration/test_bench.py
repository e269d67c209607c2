"""The benchmark itself still runs: its quick mode, the peers included (the bench
extra, which CI installs). Figures are not checked here, only that every part
measured something and that the contenders compared read the same events."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench import run, scaling
from bench.report import figures
from tests.conftest import require_module


@pytest.mark.timeout(600)
def test_quick_benchmark_measures_every_part(tmp_path: Path) -> None:
    for module in ("faust", "quixstreams", "bytewax", "pathway"):
        require_module(module, "the bench extra: pip install -e '.[dev,bench]'")
    out = tmp_path / "latest.json"
    results = run.main(["--quick", "--out", str(out)])
    assert orjson.loads(out.read_bytes()) == orjson.loads(orjson.dumps(results))
    sizes = run.QUICK
    assert results["healthscore_10k"]["events"] == sizes.events_10k
    assert results["healthscore_1m"]["events"] == sizes.accounts_1m
    assert results["latency"]["alerts"] > 0
    assert results["memory"]["mean_bytes"] > 0
    assert results["silent"]["accounts"] >= sizes.accounts_1m  # every account was due
    assert {t["name"] for t in results["targets"]} >= {"events_per_s_10k", "latency_p99_ms"}

    # The ceiling read warm: an untimed read, then the median of the timed ones.
    ceiling = results["ceiling"]
    assert ceiling["events"] == sizes.events_10k
    assert len(ceiling["runs_seconds"]) == 3
    assert ceiling["cold_seconds"] > 0
    librdkafka = results["ceiling_librdkafka"]  # the same events through librdkafka
    assert librdkafka["events"] == sizes.events_10k
    assert len(librdkafka["runs_seconds"]) == 3
    # The peers but naive faust read the whole set healthscore read; naive faust and
    # healthscore the same prefix (every peer reads it too in a full run).
    whole = run.WHOLE_SET_PEERS
    assert set(whole) == {"quix", "bytewax", "bytewax-recovery", "pathway"}
    peers = {name: results["peers"][name] for name in whole}
    side = results["side_by_side"]
    assert set(side) == {"events", "healthscore", "naive-faust"}
    peers["naive-faust side by side"] = side["naive-faust"]
    assert {name: (r["events"], r["exit_code"]) for name, r in peers.items()} == {
        **dict.fromkeys(whole, (sizes.events_10k, 0)),
        "naive-faust side by side": (sizes.prefix_events, 0),
    }
    assert (side["events"], side["healthscore"]["events"]) == (sizes.prefix_events,) * 2
    assert all(r["alerts"] > 0 for r in (*peers.values(), side["healthscore"]))
    # CPU per event for every contender compared (the process' own: Redis' not in it).
    assert all(
        r["cpu_us_per_event"] > 0
        for r in (*peers.values(), side["healthscore"], results["healthscore_10k"])
    )
    ratios = figures(results)
    assert ratios["x_naive_faust"] == (
        side["healthscore"]["events_per_s"] / side["naive-faust"]["events_per_s"]
    )
    assert ratios["x_quix"] == (
        results["healthscore_10k"]["events_per_s"] / results["peers"]["quix"]["events_per_s"]
    )
    assert ratios["x_best_peer"] == (
        results["healthscore_10k"]["events_per_s"]
        / max(results["peers"][name]["events_per_s"] for name in whole)
    )


@pytest.mark.timeout(300)
def test_quick_scaling_curve_measures_every_point(tmp_path: Path) -> None:
    out = tmp_path / "scaling.json"
    results = scaling.main(["--quick", "--out", str(out), "--logs", str(tmp_path)])
    assert orjson.loads(out.read_bytes()) == results
    workers, accounts, events = scaling.QUICK
    assert [p["workers"] for p in results["workers"]] == workers
    assert [p["accounts"] for p in results["accounts"]] == accounts
    for point in results["workers"] + results["accounts"]:
        assert point["events"] == events
        assert point["events_per_s"] > 0
        assert point["worker_cpu_us_per_event"] > 0
        assert point["redis_bytes_per_account"] > 0


def test_the_pipeline_tool_measures_a_stream_and_then_the_silent_accounts() -> None:
    # As it is run for profiling: a command, with its own embedded Redis.
    repo = Path(__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    command = [sys.executable, "-m", "bench.pipeline", "--events", "600", "--accounts", "300"]
    result = subprocess.run(
        [*command, "--batch", "200", "--fixed-clock", "--silent"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "600 events over 300 accounts in batches of 200 on one Redis" in result.stdout
    silent = re.search(r"silent: (\d+) accounts rescored \((\d+) alerts\)", result.stdout)
    assert silent is not None, result.stdout
    assert int(silent[1]) > 0  # each account is due once its windows rolled
