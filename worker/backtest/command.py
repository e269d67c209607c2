"""``healthscore backtest``: score every account as of a past day with a model, then
compare with what the accounts did within the horizon after it.

The moment defaults to the newest outcome's date minus the horizon, so every account's
horizon lies within what the outcomes cover. Scores are rebuilt by the replay machinery
into a Redis of the backtest's own (an embedded one unless ``--scratch-redis`` names an
empty one): the live state is never read or written, and live workers run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from worker.backtest import history, outcomes
from worker.errors import ConfigError, HealthscoreError
from worker.modelfile.load import model_text, parse_duration
from worker.modelfile.segments import parse_models
from worker.progress import Reporter
from worker.runtime import modeltopic
from worker.scoring.segments import ModelSet
from worker.settings import Settings
from worker.windows import server
from worker.windows.wire import Client

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    model_path: str  # "" = the setting's, or the packaged default
    outcomes: str  # a JSON-lines file, else a topic name
    horizon: str  # a duration, e.g. 90d
    as_of: str | None  # YYYY-MM-DD; None: the newest outcome's date minus the horizon
    out_dir: Path
    as_json: bool
    scratch_redis: str | None


def backtest(settings: Settings, request: Request) -> int:
    # Imported here: numpy, scikit-learn and matplotlib are an optional extra.
    try:
        from worker.backtest import output, plot, report
    except ImportError as exc:
        raise ConfigError(
            f"backtest needs the calibrate extra ({exc.name} is missing): "
            "pip install 'healthscore[calibrate]'"
        ) from None
    # The file named, else what the workers score with (the models topic's, if set).
    text, source = (
        model_text(request.model_path)
        if request.model_path
        else asyncio.run(modeltopic.newest(settings))
    )
    models = parse_models(text, source)
    horizon = parse_duration(request.horizon, "--horizon")
    known = _outcomes(settings, request.outcomes)
    moment = _moment(request.as_of, known.records, horizon)
    with _scratch(request.scratch_redis) as url:
        rebuilt = asyncio.run(_rebuild(history.scratch_settings(settings, url), models, moment))
    items, gone = report.samples(
        rebuilt.snapshots, outcomes.churn_dates(known.records), moment, horizon
    )
    result = report.build(
        models.default,
        items,
        moment=_iso(moment),
        horizon_days=horizon / 86400,
        skipped={
            "churned before the moment": gone,
            "without a score at the moment": rebuilt.unscored,
            "outcome records rejected": known.rejected,
        },
    )
    request.out_dir.mkdir(parents=True, exist_ok=True)
    written = plot.draw(result, request.out_dir / "churn")
    if result.fit is not None:
        fitted = request.out_dir / "model.fitted.yaml"
        fitted.write_text(output.fitted_model(text, source, result, result.fit), "utf-8")
        written.append(fitted)
    extra = {
        "outcomes": known.source,
        "records_read": rebuilt.records,
        "records_after_moment": rebuilt.later,
        "files": [str(p) for p in [request.out_dir / "report.json", *written]],
    }
    document = output.as_json(result, extra)
    (request.out_dir / "report.json").write_bytes(document)
    if request.as_json:
        sys.stdout.buffer.write(document + b"\n")
    else:
        print(output.text(result, [request.out_dir / "report.json", *written]))
    return 0


async def _rebuild(settings: Settings, models: ModelSet, moment: float) -> history.Rebuilt:
    redis = server.client(settings)
    try:
        await _refuse_unless_empty(redis)
        with Reporter("backtest", sys.stderr) as progress:
            return await history.scores_as_of(settings, models, redis, moment, progress)
    finally:
        await redis.aclose()


def _outcomes(settings: Settings, where: str) -> outcomes.Outcomes:
    path = Path(where)
    known = (
        outcomes.read_file(path)
        if path.is_file()
        else asyncio.run(outcomes.read_topic(settings, where))
    )
    if not known.records:
        raise ConfigError(
            f"no outcomes in {known.source}"
            + (f" ({known.rejected} records rejected)" if known.rejected else "")
        )
    return known


def _moment(as_of: str | None, records: list[outcomes.Outcome], horizon: int) -> float:
    if as_of is not None:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            raise ConfigError(f"--as-of: {as_of!r} is not a date like 2026-09-01") from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    newest = max(o.day for o in records)
    end = datetime(newest.year, newest.month, newest.day, tzinfo=UTC) + timedelta(days=1)
    return end.timestamp() - horizon


@contextlib.contextmanager
def _scratch(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from worker.embedded import EmbeddedRedis

    try:
        with EmbeddedRedis() as redis:
            yield redis.url
    except HealthscoreError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"backtest: could not start its own Redis: {exc}") from None


async def _refuse_unless_empty(redis: Client) -> None:
    """The backtest rebuilds state from scratch: it must never touch a Redis in use."""
    if await redis.dbsize():
        raise ConfigError(
            "--scratch-redis: the database holds keys; a backtest "
            "needs an empty one (it would mix its state with what is there)"
        )


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
