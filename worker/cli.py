"""``healthscore``: worker | dev | simulate | explain | alerts | replay | backtest | notify |
api | publish-model | check-model."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from worker import logs
from worker.errors import ConfigError, Unreachable, access_denied, is_retriable
from worker.settings import Settings, env_name

# Flag -> setting, on every command but dev (which starts its own broker and Redis).
CONNECTION_FLAGS = {"bootstrap": "kafka_bootstrap", "redis_url": "redis_url"}
LIVE_HISTORY_DAYS = 14.0  # simulate: past usage first, so 30-day windows are not empty
COHORT_DAYS = 150.0  # simulate --outcomes: months of history, outcomes in the last ones


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        print(f"healthscore: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings)
    try:
        return int(args.run(settings, args) or 0)
    except ConfigError as exc:  # its subclasses say why by their exit codes (README)
        print(f"healthscore: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Unreachable as exc:
        print(f"healthscore: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Every command: Redis or Kafka refusing us is one line, and so is a command (the
        # worker waits instead) that cannot reach them.
        if (denied := access_denied(exc)) is not None:
            print(f"healthscore: {denied}", file=sys.stderr)
            return denied.exit_code
        if (unreachable := _unreachable(exc)) is None:
            raise
        print(f"healthscore: {unreachable}", file=sys.stderr)
        return 1


def load_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults < the dev file (``healthscore dev``'s addresses) < environment < flags."""
    from worker import devenv

    flags = {
        env_name(setting): value
        for flag, setting in CONNECTION_FLAGS.items()
        if (value := getattr(args, flag, None)) is not None
    }
    values, note = devenv.layered_environ(
        os.environ if environ is None else environ,
        flags,
        use_file=not getattr(args, "own_backends", False),
    )
    if note is not None:
        print(f"healthscore: {note}", file=sys.stderr)
    return Settings.from_env(values)


def _unreachable(exc: Exception) -> Unreachable | None:
    from aiokafka.errors import KafkaError
    from redis.exceptions import RedisError

    if not is_retriable(exc):
        return None
    if isinstance(exc, KafkaError):
        return Unreachable("the broker", exc)
    if isinstance(exc, RedisError):
        return Unreachable("Redis", exc)
    return None  # an OSError of this host (a port in use, ...) is no unreachable service


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="healthscore",
        description="Live customer health scores: Kafka events in, tier-change alerts out.",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("worker", help="run a scoring worker (HEALTHSCORE_* settings)")
    p.set_defaults(run=_worker)

    p = sub.add_parser("dev", help="local broker + Redis + worker + simulated traffic")
    p.add_argument("--no-simulate", action="store_true", help="start without synthetic traffic")
    p.add_argument(
        "--all-alerts",
        action="store_true",
        help="print every alert, not one line of counts for catch-up ones",
    )
    _simulation_options(p, rate=200.0, accounts=200)
    p.set_defaults(run=_dev, own_backends=True)

    p = sub.add_parser("simulate", help="produce a synthetic stream of accounts and events")
    _simulation_options(p, rate=500.0, accounts=500)
    p.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--outcomes",
        type=Path,
        default=None,
        metavar="FILE",
        help="a customer base with known outcomes instead: its history "
        f"(default {COHORT_DAYS:g} days) as fast as the broker takes it, then "
        "one outcome per account to the outcomes topic and to FILE (JSON lines)",
    )
    p.add_argument(
        "--outcome-days",
        type=float,
        default=90.0,
        help="with --outcomes: outcomes fall in the history's last N days (90)",
    )
    p.add_argument(
        "--events-per-user-day",
        type=float,
        default=1.6,
        help="with --outcomes: a thriving user's events a day (1.6)",
    )
    p.set_defaults(run=_simulate, history_days=None)

    p = sub.add_parser("explain", help="an account's score, tier and components, now")
    p.add_argument("account_id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_explain)

    p = sub.add_parser("alerts", help="print tier-change alerts as they are published")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--json", action="store_true", help="one JSON alert per line")
    p.set_defaults(run=_alerts)

    p = sub.add_parser("replay", help="rebuild Redis state and scores from the event topics")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--from-beginning",
        action="store_true",
        help="from the earliest retained offset of every input partition",
    )
    p.add_argument(
        "--alerts-topic",
        default=None,
        metavar="TOPIC",
        help="publish the tier changes found on the way here (default: nowhere)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run even though the consumer group still lists workers",
    )
    p.set_defaults(run=_replay)

    p = sub.add_parser(
        "backtest",
        help="how well a model's scores foretold churn, and weights fitted to the outcomes",
    )
    p.add_argument(
        "--model",
        default="",
        metavar="FILE",
        help="model file to test (default: HEALTHSCORE_MODEL_PATH's)",
    )
    p.add_argument(
        "--outcomes",
        default=None,
        metavar="FILE|TOPIC",
        help="outcome records: a JSON-lines file, else a topic "
        "(default: HEALTHSCORE_TOPIC_OUTCOMES)",
    )
    p.add_argument(
        "--horizon",
        default="90d",
        help="churn within this long after the moment counts (default 90d)",
    )
    p.add_argument(
        "--as-of",
        default=None,
        metavar="YYYY-MM-DD",
        help="the moment scores are taken (default: the newest outcome's date minus the horizon)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("backtest"),
        metavar="DIR",
        help="where report.json, churn.png/.svg and model.fitted.yaml go (default ./backtest)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--scratch-redis",
        default=None,
        metavar="URL",
        help="an empty Redis database to rebuild into (default: one started for the run)",
    )
    p.set_defaults(run=_backtest)

    p = sub.add_parser("notify", help="send tier-change alerts to people")
    channels = p.add_subparsers(required=True, metavar="CHANNEL")
    p = channels.add_parser("slack", help="post alerts to a Slack incoming webhook")
    _notify_options(p)
    p.set_defaults(run=_notify_slack)

    p = sub.add_parser("api", help="serve the account API (scores, tiers, the model) over HTTP")
    p.add_argument("--host", default=None, help="address to bind (default: HEALTHSCORE_API_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default: HEALTHSCORE_API_PORT)")
    p.set_defaults(run=_api)

    p = sub.add_parser(
        "publish-model",
        help="check a model file, then send it to the "
        "models topic (HEALTHSCORE_TOPIC_MODELS) for every worker to apply",
    )
    p.add_argument("path", help="model file")
    p.set_defaults(run=_publish_model)

    p = sub.add_parser("check-model", help="validate a model file and print its components")
    p.add_argument("path", nargs="?", default=None, help="model file (default: the setting)")
    p.set_defaults(run=_check_model)
    _connection_flags(parser)
    return parser


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap`` and ``--redis-url`` on every command, nested ones included, added
    here once rather than by each command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in dict.fromkeys(action.choices.values()):  # aliases: once
                _connection_flags(command)
            return
    if parser.get_default("own_backends"):
        return
    group = parser.add_argument_group(
        "connection (default: HEALTHSCORE_* environment,"
        " else the file of a running healthscore dev)"
    )
    group.add_argument(
        "--bootstrap",
        type=_address,
        metavar="HOST:PORT[,...]",
        help="Kafka bootstrap servers (HEALTHSCORE_KAFKA_BOOTSTRAP)",
    )
    group.add_argument(
        "--redis-url",
        type=_address,
        metavar="URL",
        help="Redis URL, e.g. redis://127.0.0.1:6379/0 (HEALTHSCORE_REDIS_URL)",
    )


def _address(raw: str) -> str:
    if not raw.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return raw.strip()


def _notify_options(p: argparse.ArgumentParser) -> None:
    # Each flag overrides the setting of the same name (README, Notifying people).
    flags = [
        ("--webhook-url", "slack_webhook_url", "URL", str),
        ("--webhook-file", "slack_webhook_file", "FILE", str),
        ("--link-template", "slack_link_template", "URL", str),
        ("--group-id", "notify_group_id", "GROUP", str),
        ("--tiers", "notify_tiers", "TIERS", str),
        ("--direction", "notify_direction", "any|down|up", str),
        ("--segments", "notify_segments", "SEGMENTS", str),
        ("--digest-minutes", "notify_digest_minutes", "N", float),
    ]
    for flag, dest, metavar, kind in flags:
        p.add_argument(
            flag,
            dest=dest,
            metavar=metavar,
            type=kind,
            default=None,
            help=f"overrides HEALTHSCORE_{dest.upper()}",
        )


def _simulation_options(p: argparse.ArgumentParser, *, rate: float, accounts: int) -> None:
    p.add_argument("--rate", type=float, default=rate, help=f"events/s (default {rate:g})")
    p.add_argument(
        "--accounts", type=int, default=accounts, help=f"synthetic accounts (default {accounts})"
    )
    p.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable run")
    p.add_argument(
        "--history-days",
        type=float,
        default=LIVE_HISTORY_DAYS,
        help="days of past usage sent first, so 30-day windows are not empty "
        f"(default {LIVE_HISTORY_DAYS:g})",
    )


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from worker.app import serve

    asyncio.run(serve(settings))
    return 0


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    from worker.devmode import run_dev

    return run_dev(settings, args)


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from worker.simulate.producer import run_cohort, run_simulation

    if args.outcomes is not None:
        stats = asyncio.run(
            run_cohort(
                settings,
                accounts=args.accounts,
                days=args.history_days or COHORT_DAYS,
                outcome_days=args.outcome_days,
                outcomes_file=args.outcomes,
                seed=args.seed,
                per_user_day=args.events_per_user_day,
                progress=not args.no_progress,
            )
        )
        sent = ", ".join(f"{kind} {n}" for kind, n in sorted(stats.sent.items()))
        print(
            f"sent {stats.total} records in {stats.elapsed:.1f} s ({sent}); "
            f"outcomes written to {args.outcomes}"
        )
        return 0

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        stats = await run_simulation(
            settings,
            accounts=args.accounts,
            rate=args.rate,
            duration=args.duration,
            seed=args.seed,
            progress=not args.no_progress,
            history_days=LIVE_HISTORY_DAYS if args.history_days is None else args.history_days,
            stop=stop,
        )
        sent = ", ".join(f"{kind} {n}" for kind, n in sorted(stats.sent.items()))
        print(f"sent {stats.total} records in {stats.elapsed:.1f} s ({sent})")

    asyncio.run(run())
    return 0


def _explain(settings: Settings, args: argparse.Namespace) -> int:
    from worker.commands import explain_command

    return asyncio.run(explain_command(settings, args.account_id, as_json=args.json))


def _alerts(settings: Settings, args: argparse.Namespace) -> int:
    from worker.commands import alerts_command

    return asyncio.run(
        alerts_command(settings, from_beginning=args.from_beginning, as_json=args.json)
    )


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from worker.progress import Reporter
    from worker.replay import Replay

    async def run() -> str:
        with Reporter("replay", sys.stderr) as progress:
            replay = Replay(
                settings, alerts_topic=args.alerts_topic, force=args.force, progress=progress
            )
            return (await replay.run()).summary()

    print(asyncio.run(run()))
    return 0


def _backtest(settings: Settings, args: argparse.Namespace) -> int:
    from worker.backtest.command import Request, backtest

    request = Request(
        args.model,
        args.outcomes or settings.topic_outcomes,
        args.horizon,
        args.as_of,
        args.out,
        args.json,
        args.scratch_redis,
    )
    return backtest(settings, request)


def _notify_slack(settings: Settings, args: argparse.Namespace) -> int:
    from worker.notify.run import notify_slack

    return notify_slack(settings, args)


def _api(settings: Settings, args: argparse.Namespace) -> int:
    from worker.api.serve import serve_api

    changes = {k: v for k, v in (("api_host", args.host), ("api_port", args.port)) if v is not None}
    settings = settings.replace(**changes)
    settings.validate()
    asyncio.run(serve_api(settings))
    return 0


def _publish_model(settings: Settings, args: argparse.Namespace) -> int:
    from worker.runtime.modeltopic import publish

    print(asyncio.run(publish(settings, args.path)))
    return 0


def _check_model(settings: Settings, args: argparse.Namespace) -> int:
    from worker.modelfile.segments import load_models

    models = load_models(args.path or settings.model_path)
    for model in models.all():
        heading = (
            f"model {model.version}" if model.segment is None else f"segment model {model.segment}"
        )
        print(
            f"{heading}: bucket {model.bucket_seconds} s, tiers "
            + ", ".join(f"{t.name} >= {t.min_score:g}" for t in model.tiers)
            + f" (margin {model.margin:g})"
        )
        for c in model.components:
            trend = "" if c.trend is None else f" vs the {c.window_buckets} before"
            print(
                f"  {c.name:<20} {c.signal.name:<24} window {c.window_buckets} buckets"
                f"{trend}  weight {c.weight:g}"
            )
    if models.onboarding is not None:
        print(
            f"lifecycle: accounts created less than {models.onboarding.days} days ago are "
            f"scored by segment model {models.onboarding.model}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
