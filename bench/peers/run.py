"""Run one peer as a subprocess over preloaded topics and collect its own measurement.

    python -m bench.peers.run [--events 20000] [--accounts 10000] [--peers naive-faust,quix]

starts an embedded broker and Redis, preloads the events once, and runs each peer
on the same topics, each in its own consumer group with its own output topic,
Redis key prefix and state dir.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.contender import settings_env
from bench.data import events, preload
from bench.peers import progress
from worker.embedded import EmbeddedStack
from worker.runtime.topics import ensure_topics
from worker.settings import Settings

# Peer name -> its module and the arguments that make it that peer.
PEERS: dict[str, tuple[str, list[str]]] = {
    "naive-faust": ("bench.peers.naive_faust", []),
    "quix": ("bench.peers.quix_app", []),
    "bytewax": ("bench.peers.bytewax_app", []),
    "bytewax-recovery": ("bench.peers.bytewax_app", ["--recovery"]),
    "pathway": ("bench.peers.pathway_app", []),
}
ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.2
STOP_TIMEOUT_S = 30.0


@dataclass
class PeerResult:
    name: str
    events: int
    seconds: float  # from the first event processed to the last
    events_per_s: float
    alerts: int
    exit_code: int | None = None  # of the peer after it was stopped; 0 is a clean exit
    cpu_seconds: float = 0.0  # the peer process' CPU (all its threads) in those seconds
    cpu_us_per_event: float = 0.0
    rescores: int = 0  # scorings: one per event, or per account and batch


def run_peer(
    name: str,
    *,
    bootstrap: str,
    redis_url: str,
    settings: Settings,
    total_events: int,
    timeout_s: float,
    output_topic: str,
    scores: Path | None = None,
) -> PeerResult:
    """Run peer ``name`` until it has processed ``total_events`` or ``timeout_s`` passed
    (then ``events < total_events``), stop it, and return what it measured. ``scores``:
    where the peer writes each account's final score and tier as it stops."""
    settings = settings.replace(kafka_bootstrap=bootstrap, redis_url=redis_url)
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix=f"healthscore-peer-{name}-") as tmp:
        result, log_path = Path(tmp) / "result.json", Path(tmp) / "peer.log"
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        module, extra = PEERS[name]
        command = [
            sys.executable,
            "-m",
            module,
            *extra,
            "--result",
            str(result),
            "--group",
            f"bench-{name}-{run_id}",
            "--output-topic",
            output_topic,
            "--expect",
            str(total_events),
            "--data-dir",
            str(data_dir),
            "--key-prefix",
            f"peer:{name}:{run_id}",
            *(["--scores", str(scores)] if scores is not None else []),
        ]
        env = {
            **settings_env(settings),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait(proc, result, total_events, time.monotonic() + timeout_s)
            finally:
                code = _stop(proc)
        data = progress.read(result) or {}
        if code != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            print(f"{name} exited with {code}; log tail:\n{tail}", file=sys.stderr)
    events, seconds = int(data.get("events", 0)), float(data.get("seconds", 0.0))
    cpu = float(data.get("cpu_seconds", 0.0))
    return PeerResult(
        name,
        events,
        seconds,
        events / seconds if seconds > 0 else 0.0,
        int(data.get("alerts", 0)),
        code,
        cpu,
        1e6 * cpu / events if events else 0.0,
        int(data.get("rescores", 0)),
    )


def _wait(proc: subprocess.Popen[bytes], result: Path, total: int, deadline: float) -> None:
    while proc.poll() is None and time.monotonic() < deadline:
        data = progress.read(result)
        if data is not None and data["events"] >= total:
            return
        time.sleep(POLL_S)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM (both frameworks shut down cleanly on it), SIGKILL if that hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per peer")
    args = parser.parse_args(argv)
    names = args.peers.split(",")
    ok = True
    with EmbeddedStack() as stack:
        settings = Settings(
            kafka_bootstrap=stack.bootstrap,
            redis_url=stack.url,
            metrics_port=0,
            session_timeout_ms=6000,
        )
        outputs = {name: f"bench.alerts.{name}" for name in names}
        asyncio.run(ensure_topics(settings, extra=list(outputs.values())))
        sent = asyncio.run(preload(settings, events(args.events, args.accounts)))
        print(f"preloaded {sent} events over {args.accounts} accounts")
        for name in names:
            r = run_peer(
                name,
                bootstrap=stack.bootstrap,
                redis_url=stack.url,
                settings=settings,
                total_events=sent,
                timeout_s=args.timeout,
                output_topic=outputs[name],
            )
            complete = r.events == sent and r.alerts > 0 and r.exit_code == 0
            ok &= complete
            print(
                f"{r.name:16} {r.events:>8} events in {r.seconds:7.2f} s = "
                f"{r.events_per_s:>8,.0f} events/s, CPU {r.cpu_us_per_event:5.0f} us/event, "
                f"{r.alerts} alerts, {r.rescores} rescores, exit {r.exit_code}"
                f"{'' if complete else '  INCOMPLETE'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
