"""``healthscore simulate --outcomes`` and ``healthscore backtest`` as a CS lead runs
them, as subprocesses: a customer base with known outcomes goes through the real broker;
the backtest rebuilds its scores in a Redis of its own, finds the signal, writes its
report, plot and fitted model (which loads, and backtests again), reads the outcomes from
the topic and from the file alike, and never touches the live Redis."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from tests.integration import chaos
from tests.integration.test_replay_cli import HEALTHSCORE
from worker.contracts import validator
from worker.settings import Settings

ACCOUNTS = 240
SIMULATE = [
    "--accounts",
    str(ACCOUNTS),
    "--history-days",
    "100",
    "--outcome-days",
    "60",
    "--events-per-user-day",
    "0.6",
    "--seed",
    "5",
    "--no-progress",
]


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEALTHSCORE, *args], env=chaos.env(settings), capture_output=True, text=True, timeout=240
    )


def _backtest(settings: Settings, out: Path, *args: str) -> dict[str, Any]:
    done = _run(settings, "backtest", "--horizon", "60d", "--out", str(out), "--json", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


async def test_a_simulated_base_is_backtested_end_to_end(
    settings: Settings, redis: Redis, tmp_path: Path
) -> None:
    outcomes = tmp_path / "outcomes.jsonl"
    simulated = _run(settings, "simulate", "--outcomes", str(outcomes), *SIMULATE)
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    assert f"outcome {ACCOUNTS}" in simulated.stdout
    records = [orjson.loads(line) for line in outcomes.read_bytes().splitlines()]
    assert len(records) == ACCOUNTS
    assert all(validator("outcome").is_valid(r) for r in records)

    out = tmp_path / "report"
    report = _backtest(settings, out)  # the outcomes from the topic: the default
    assert report["accounts"] > ACCOUNTS * 0.9
    assert report["churned"] >= 20
    assert report["auc"] > 0.6, report["auc"]  # the fading churners are found
    assert sum(g["accounts"] for g in report["tiers"]) == report["accounts"]
    assert sum(g["accounts"] for g in report["deciles"]) == report["accounts"]
    assert report["deciles"][0]["churn_rate"] > report["deciles"][-1]["churn_rate"]
    assert {c["name"] for c in report["components"]} >= {"login_frequency", "nps"}
    assert orjson.loads((out / "report.json").read_bytes()) == report
    assert (out / "churn.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (out / "churn.svg").read_bytes()

    fit = report["fit"]
    assert fit is not None
    assert fit["held_out_auc_model"] is not None
    assert fit["held_out_auc_fitted"] is not None
    fitted = out / "model.fitted.yaml"
    checked = _run(settings, "check-model", str(fitted))
    assert checked.returncode == 0, checked.stderr
    assert "-fitted" in checked.stdout

    again = _backtest(
        settings, tmp_path / "fitted", "--model", str(fitted), "--outcomes", str(outcomes)
    )
    assert again["model_version"].endswith("-fitted")
    assert again["accounts"] == report["accounts"]
    assert again["churned"] == report["churned"]

    assert await redis.dbsize() == 0  # the live Redis: never read or written


async def test_a_backtest_refuses_a_redis_in_use_and_outcomes_it_cannot_read(
    settings: Settings, redis: Redis, tmp_path: Path
) -> None:
    await redis.set("live-state", "kept")
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_text('{"account_id": "a1", "outcome": "churned", "date": "2026-10-01"}\n')
    refused = _run(
        settings,
        "backtest",
        "--outcomes",
        str(outcomes),
        "--scratch-redis",
        settings.redis_url,
        "--out",
        str(tmp_path / "out"),
    )
    assert refused.returncode == 2
    assert "holds keys" in refused.stderr
    assert await redis.get("live-state") == b"kept"

    outcomes.write_text('{"account_id": "a1", "outcome": "left"}\nnot json\n')
    unreadable = _run(
        settings, "backtest", "--outcomes", str(outcomes), "--out", str(tmp_path / "out")
    )
    assert unreadable.returncode == 2
    assert "no outcomes in" in unreadable.stderr
    assert "2 records rejected" in unreadable.stderr
