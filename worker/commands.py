"""The read-side commands: ``explain`` and ``alerts``. Thin: format what others compute."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any, Protocol

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from worker.clock import WallClock
from worker.explain import explain
from worker.gaps import is_data_gap
from worker.overrideview import print_overrides
from worker.recoveryview import print_recovery
from worker.runtime import kafka
from worker.runtime.modeltopic import newest_models
from worker.settings import Settings
from worker.terminal import visible
from worker.windows import server
from worker.windows.store import WindowStore

TIER_STYLE = {
    "green": "green",
    "yellow": "yellow",
    "red": "red",
    "unknown": "dim",
    "data_gap": "bold magenta",
}


async def explain_command(settings: Settings, account_id: str, *, as_json: bool) -> int:
    models = await newest_models(settings)
    redis = server.client(settings)
    try:
        result = await explain(
            WindowStore.from_settings(redis, models.windows, settings),
            models,
            account_id,
            WallClock(),
        )
    finally:
        await redis.aclose()
    data = result.as_dict()
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_explanation(data)
    return 0 if result.known else 1


def _print_explanation(data: dict[str, Any], console: Console | None = None) -> None:
    # Built from Text, never from markup: a value from input is only ever text (rich's
    # ``escape`` depends on what follows it: a trailing backslash doubles before ")").
    console = console or Console()
    account = visible(data["account_id"])
    if data["score"] is None:
        console.print(
            Text.assemble((account, "bold"), ": no data in any window (unknown account?)")
        )
        _print_attributes(data, console)
        print_overrides(data, console)
        return
    tier = data["tier"]
    segment = "no segment" if data["segment"] is None else visible(data["segment"])
    console.print(
        Text.assemble(
            (account, "bold"),
            f" ({segment}): score ",
            (f"{data['score']:.1f}", "bold"),
            ", tier ",
            (visible(tier), TIER_STYLE.get(tier, "bold")),
            f" (last published: {visible(data['published_tier'])}), "
            f"model {visible(data['model_version'])}{_segment_model(data)}, at {data['at']}",
        )
    )
    _print_attributes(data, console)
    print_overrides(data, console)
    table = Table("component", "value", "sub-score", "weight", "contribution")
    for c in data["components"]:
        name = Text(visible(c["name"]))
        if c["value"] is None:
            table.add_row(name, "no data", "-", f"{c['weight']:g}", "-", style="dim")
        else:
            value = c.get("trend") or f"{c['value']:.3g}"  # a trend: "-35% vs the ..."
            table.add_row(
                name, value, f"{c['subscore']:.1f}", f"{c['weight']:g}", f"{c['contribution']:.1f}"
            )
    console.print(table)
    for c in data["components"]:
        if c.get("peers"):
            console.print(Text(f"{visible(c['name'])}: {peer_line(c['peers'])}"), highlight=False)
        if c.get("capped"):
            console.print(
                Text(
                    f"{visible(c['name'])}: approximate, its window has more distinct "
                    f"{' and '.join(c['capped'])} than"
                    " HEALTHSCORE_MAX_DISTINCT_MEMBERS tracks"
                ),
                highlight=False,
            )
    print_recovery(data, console)


def peer_line(peers: dict[str, Any]) -> str:
    """A percentile component's rank in words: ``62nd percentile of 340 mid_market
    accounts (value 12.5)``."""
    group = (
        "accounts without a segment"
        if peers["segment"] is None
        else f"{visible(peers['segment'])} accounts"
    )
    return (
        f"{ordinal(round(peers['percentile']))} percentile of {peers['accounts']:,} "
        f"{group} (value {peers['value']:.3g})"
    )


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _segment_model(data: dict[str, Any]) -> str:
    name = (data.get("model") or {}).get("segment")
    return "" if name in (None, "default") else f" ({visible(name)} segment model)"


def _print_attributes(data: dict[str, Any], console: Console) -> None:
    others = {
        k: v
        for k, v in (data.get("attributes") or {}).items()
        if k not in ("account_id", "segment")
    }
    if others:
        console.print(
            Text(
                "attributes: "
                + ", ".join(f"{visible(k)}={visible(v)}" for k, v in sorted(others.items()))
            )
        )


def alert_line(alert: dict[str, Any]) -> str:
    """One human line per alert, for terminals and logs: plain text, every value from
    the record with its control characters written out (``visible``)."""
    if is_data_gap(alert):
        return gap_line(alert)
    account, tier = visible(alert["account_id"]), visible(alert["tier"])
    trigger = alert["triggering_component"]
    if alert["previous_tier"] is None:
        return f"{account}: first scored {tier} (score {alert['score']:.1f}){_pull(trigger)}"
    why = (
        ""
        if trigger is None
        else (f" trigger {visible(trigger['name'])} ({trigger['contribution_change']:+.1f} pts)")
    )
    cause = alert["cause"]
    what = visible(cause["event_type"] or cause["kind"])
    before = "" if alert["previous_score"] is None else f"{alert['previous_score']:.1f} -> "
    over = alert.get("override")
    by = "" if over is None else f" (override by {visible(over['author'])})"
    return (
        f"{account}: {visible(alert['previous_tier'])} -> {tier} "
        f"(score {before}{alert['score']:.1f}){why} after {what}{by}"
    )


def gap_line(gap: dict[str, Any]) -> str:
    what = visible(gap["event_type"])
    if gap["state"] == "open":
        return (
            f"data gap: no {what} events since {visible(gap['since'])} on partitions "
            f"{', '.join(map(str, gap['partitions']))}: tier changes they cause are held"
        )
    return f"data gap closed: {what} events arrive again ({visible(gap['detected_at'])})"


def _pull(trigger: dict[str, Any] | None) -> str:
    """A first score has no change to attribute: its trigger is the component that pulls
    the score furthest the way the tier lies (measured against the score itself)."""
    if trigger is None or not trigger["contribution_change"]:
        return ""
    side = "lowest" if trigger["contribution_change"] < 0 else "highest"
    return f", {side} {visible(trigger['name'])}"


class AlertSink(Protocol):
    """Where ``tail_alerts`` hands each record of the alerts topic."""

    def show(self, value: bytes | None) -> None: ...

    def tick(self) -> None: ...  # after every fetch, records or not

    def close(self) -> None: ...


class Printer:
    """Every alert, one line each (JSON as published, or ``alert_line``)."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json

    def show(self, value: bytes | None) -> None:
        print_alert(value, self.as_json)

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


async def alerts_command(settings: Settings, *, from_beginning: bool, as_json: bool) -> int:
    """``healthscore alerts``: until SIGTERM or SIGINT, then stop consuming and exit 0 with
    every alert fetched printed (each line is flushed as it is written)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await tail_alerts(
            settings, from_beginning=from_beginning, sink=Printer(as_json=as_json), stop=stop
        )
    except BrokenPipeError:
        # The reader went away (``| head``): as any filter, stop quietly; stdout is
        # pointed at /dev/null so that the interpreter's own flush at exit fails neither.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


async def tail_alerts(
    settings: Settings, *, from_beginning: bool, sink: AlertSink, stop: asyncio.Event | None = None
) -> None:
    consumer = kafka.consumer(
        settings,
        settings.topic_alerts,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    try:
        await consumer.start()  # inside: a broker that does not answer leaves it to close
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():  # a whole fetch is printed, stop or not
                for record in records:
                    sink.show(record.value)
            sink.tick()
        sink.close()
    finally:
        await consumer.stop()


def print_alert(value: bytes | None, as_json: bool) -> None:
    if as_json:
        if value is not None:
            # Flushed line by line: a consumer at the other end of a pipe gets each alert
            # as it is published, not when a block buffer fills or the command exits.
            sys.stdout.write(value.decode(errors="replace") + "\n")
            sys.stdout.flush()
        return
    try:
        alert = orjson.loads(value or b"null")
        line = alert_line(alert)
        style = TIER_STYLE.get(alert.get("kind") or alert["tier"], "")
    except (orjson.JSONDecodeError, LookupError, TypeError, ValueError, AttributeError):
        # Someone else's record on the alerts topic: say so, and keep tailing.
        sys.stderr.write(
            f"healthscore: skipped a record that is not an alert: "
            f"{visible((value or b'').decode(errors='replace')[:200])}\n"
        )
        return
    # soft_wrap: one alert, one line, also when piped into a file or grep.
    Console(soft_wrap=True).print(Text(line, style=style), highlight=False)  # no markup
    sys.stdout.flush()
