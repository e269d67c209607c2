"""``healthscore dev``: a whole local setup in one command.

Starts the embedded broker and Redis, a worker, a simulated customer base and
an alert printer (live changes one line each, catch-up ones as counts), all in
this process; Ctrl-C stops everything and removes the local backends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from rich.console import Console

from worker import devenv
from worker.app import Worker
from worker.catchup import CatchUpSummary
from worker.commands import AlertSink, Printer, tail_alerts
from worker.embedded import EmbeddedStack
from worker.modelfile.segments import load_models
from worker.settings import Settings


def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    # The embedded Redis is throwaway by design: its missing persistence is no news.
    logging.getLogger("worker.startup").setLevel(logging.ERROR)
    console = Console(soft_wrap=True)
    console.print("starting the embedded broker and Redis ...")
    with EmbeddedStack() as stack:
        settings = settings.replace(kafka_bootstrap=stack.bootstrap, redis_url=stack.url)
        console.print(f"  broker   {stack.bootstrap}   (HEALTHSCORE_KAFKA_BOOTSTRAP)")
        console.print(f"  redis    {stack.url}   (HEALTHSCORE_REDIS_URL)")
        if settings.metrics_port:
            console.print(
                f"  metrics  http://{settings.metrics_host}:{settings.metrics_port}/metrics"
            )
        with devenv.published(settings) as written:
            _say_where(console, settings, written)
            asyncio.run(_run(settings, args, console))
    console.print("stopped; local broker and Redis removed")
    return 0


def _say_where(console: Console, settings: Settings, written: Path | None) -> None:
    if written is None:
        console.print(
            f"  {settings.dev_env} belongs to another healthscore dev that is still"
            " running: left as it is",
            highlight=False,
            markup=False,
        )
    else:
        console.print(
            f"  addresses in {written} (other commands read them when nothing else is set)",
            highlight=False,
            markup=False,
        )


async def _run(settings: Settings, args: argparse.Namespace, console: Console) -> None:
    worker = Worker(settings)
    worker.serve_endpoint()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    worker_task = asyncio.create_task(worker.run())
    stopped = asyncio.create_task(stop.wait())
    ready = asyncio.create_task(worker.loop.ready.wait())
    await asyncio.wait({ready, stopped, worker_task}, return_when=asyncio.FIRST_COMPLETED)
    helpers: list[asyncio.Task[None]] = []
    if ready.done() and not stop.is_set():
        console.print(
            f"[bold green]ready[/]: scoring {', '.join(settings.input_topics)}; "
            f"alerts on {settings.topic_alerts} (Ctrl-C to stop)"
        )
        helpers.append(
            asyncio.create_task(
                tail_alerts(settings, from_beginning=True, sink=_sink(settings, args), stop=stop)
            )
        )
        if not args.no_simulate:
            helpers.append(asyncio.create_task(_simulate(settings, args)))
        await asyncio.wait({stopped, worker_task}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    stopped.cancel()
    await _shutdown(worker, worker_task, helpers)


def _sink(settings: Settings, args: argparse.Namespace) -> AlertSink:
    # The simulator's history alone publishes an alert for every account (and a few
    # more as tiers settle): as counts, they leave the live changes readable.
    if args.all_alerts:
        return Printer(as_json=False)
    models = load_models(settings.model_path).all()
    return CatchUpSummary(list(dict.fromkeys(t.name for m in models for t in m.tiers)))


async def _simulate(settings: Settings, args: argparse.Namespace) -> None:
    from worker.simulate.producer import run_simulation

    await run_simulation(
        settings,
        accounts=args.accounts,
        rate=args.rate,
        duration=None,
        seed=args.seed,
        progress=False,
        history_days=args.history_days,
    )


async def _shutdown(
    worker: Worker, worker_task: asyncio.Task[None], helpers: list[asyncio.Task[None]]
) -> None:
    for task in helpers:
        task.cancel()
    worker.stop()
    for task in helpers:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await worker_task  # re-raises what stopped the worker, if anything did
