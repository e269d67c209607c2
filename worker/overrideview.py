"""``explain``'s lines about an account's overrides: plain text, every value from the
record written out with its control characters visible."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from worker.terminal import visible


def what(o: dict[str, Any]) -> str:
    if o["kind"] == "pin":
        return f"tier pinned to {visible(o['tier'])}"
    return f"{visible(o['component'])} sub-score set to {o['subscore']:g}"


def print_overrides(data: dict[str, Any], console: Console) -> None:
    active = data.get("override")
    if active is not None:
        console.print(
            Text.assemble(
                ("override: ", "bold"),
                f"{what(active)} by {visible(active['author'])} until {active['expires_at']}"
                f" ({visible(active['override_id'])}: {visible(active['reason'])})",
            ),
            highlight=False,
        )
    for past in data.get("override_history") or []:
        console.print(
            Text(
                f"past override: {what(past)} by {visible(past['author'])}, {past['ended']}"
                f" {past['ended_at']} ({visible(past['override_id'])}: {visible(past['reason'])})"
            ),
            highlight=False,
        )
