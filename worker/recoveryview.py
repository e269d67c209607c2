"""What would bring an account back, in words: ``explain``'s lines and the Slack line.

Plain text from the record (``outlook.Outlook.as_dict``, an alert's ``recovery``), every
name from input written out with its control characters visible."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from worker.scoring.model import UNKNOWN_TIER
from worker.terminal import visible

_OPS = {">=": "at least", "<=": "at most", ">": "above"}


def number(value: float) -> str:
    """A value as a reader wants it: whole numbers whole, others to three significant
    digits, rounded away from the boundary so the printed value still does it."""
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.3g}"


Quote = Callable[[object], str]  # how a name from input is written: for a terminal, Slack


def change(c: dict[str, Any], quote: Quote = visible) -> str:
    """``feature_adoption from 3 to at least 6``; ``nps (no data) at least 10``."""
    name, op = quote(c["component"]), _OPS.get(c["op"], quote(c["op"]))
    target = _rounded(c["target"], c["op"])
    if c["value"] is None:
        return f"{name} (no data) {op} {target}"
    return f"{name} from {number(c['value'])} to {op} {target}"


def _rounded(target: float, op: str) -> str:
    """The target printed so that reaching the printed value reaches the target."""
    if target == int(target):
        return f"{int(target)}"
    digits = max(0, 2 - math.floor(math.log10(abs(target)))) if target else 0
    scale = 10.0**digits
    shown = (math.floor(target * scale) if op == "<=" else math.ceil(target * scale)) / scale
    return f"{shown:.{digits}f}".rstrip("0").rstrip(".")  # 0.75, not 0.750


def summary(recovery: dict[str, Any], limit: int = 3, quote: Quote = visible) -> str:
    """One line: ``back to yellow: feature_adoption from 3 to at least 6, or ...``."""
    joiner = ", or " if recovery.get("alone", True) else ", and "
    changes = [change(c, quote) for c in recovery["changes"][:limit]]
    if not changes:
        return f"no change of one component brings it back to {quote(recovery['tier'])}"
    return f"back to {quote(recovery['tier'])}: " + joiner.join(changes)


def no_hints(data: dict[str, Any]) -> str | None:
    """Why an account below the best tier has no hints (``explain``'s record), or None."""
    override = data.get("override")
    if override is not None and override.get("kind") == "pin":
        return (
            "no next steps from its data: its tier follows the pin, not the score,"
            " until the override ends or is cleared"
        )
    if data.get("tier") == UNKNOWN_TIER.name:
        return (
            "no next steps from its values: what it lacks is data (too little of the"
            " model's weight has any in its windows); events of the missing components"
            " bring it a tier"
        )
    return None


def in_users(c: dict[str, Any], data: dict[str, Any]) -> str:
    """A share of the seats in people: `` (4 more active users of 20 seats)``; else ""."""
    seats = (data.get("attributes") or {}).get("seats_purchased")
    if (
        c.get("signal") != "active_user_share"
        or not isinstance(seats, int | float)
        or isinstance(seats, bool)
        or seats <= 0
        or c["op"] != ">="
    ):
        return ""
    needed = math.ceil(c["target"] * seats - 1e-9)  # whole people reach the share
    now = 0 if c["value"] is None else round(c["value"] * seats)
    more = needed - now
    people = "active user" if more == 1 else "active users"
    return f" ({more} more {people} of {number(seats)} seats)" if more > 0 else ""


def print_recovery(data: dict[str, Any], console: Console) -> None:
    recovery = data.get("recovery")
    if recovery is None:
        why = no_hints(data)
        if why is not None:
            console.print(Text(why), highlight=False)
        return
    head = f"to reach {visible(recovery['tier'])} (score {recovery['score']:g}), " + (
        "any one of:" if recovery["alone"] else "all of:"
    )
    if not recovery["changes"]:
        head = f"to reach {visible(recovery['tier'])}: no change it can make gets there"
    console.print(Text(head, style="bold"), highlight=False)
    for c in recovery["changes"]:
        by_itself = (
            ""
            if c["by_itself_at"] is None
            else (f" (by itself on {c['by_itself_at']}, as older events leave its window)")
        )
        line = Text(f"  {change(c)}{in_users(c, data)}{by_itself}")
        if c.get("description"):  # the value's unit: what is counted, over which window
            line.append(f"  ({visible(c['description'])})", style="dim")
        console.print(line, highlight=False)
    when = recovery["by_itself_at"]
    console.print(
        Text(
            "  with no new events it gets there "
            + (f"by itself on {when}" if when else "never by itself")
        ),
        highlight=False,
    )
