"""Catch-up alerts summed up as one message (pure): counts per tier, the worst accounts.

A digest collects alerts, each with where it came from (partition, offset), so
their offsets are committed only once Slack acknowledged the digest that holds them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from worker.notify.format import COLOURS, OTHER_COLOUR, account_link, escape, tier_badge

WORST = 5

# (topic, partition, offset): a record's place, for the commit after the digest's 2xx.
Place = tuple[str, int, int]


@dataclass(slots=True)
class Digest:
    started: float | None = None  # when its first alert came (the clock of the N minutes)
    entries: dict[str, tuple[dict[str, Any], Place]] = field(default_factory=dict)  # by id
    places: list[Place] = field(default_factory=list)  # duplicates' places too

    def add(self, alert: dict[str, Any], place: Place, now: float) -> None:
        if self.started is None:
            self.started = now
        self.entries.setdefault(str(alert["alert_id"]), (alert, place))
        self.places.append(place)

    def holds(self, alert_id: str) -> bool:
        return alert_id in self.entries

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return [alert for alert, _ in self.entries.values()]

    def due(self, now: float, every: float) -> bool:
        return self.started is not None and now - self.started >= every

    def drop_partitions(self, lost: set[tuple[str, int]]) -> None:
        """Forget what came from partitions this notifier no longer owns: their next
        owner reads them again, and this digest would otherwise post them twice."""
        self.places = [p for p in self.places if p[:2] not in lost]
        self.entries = {k: e for k, e in self.entries.items() if e[1][:2] not in lost}
        if not self.places:
            self.started = None

    def __len__(self) -> int:
        return len(self.entries)


def digest_message(
    alerts: list[dict[str, Any]], minutes: float, link_template: str, tiers: list[str]
) -> dict[str, Any]:
    """The webhook payload summarising ``alerts``; ``tiers`` orders the counts (best first)."""
    latest = _latest_per_account(alerts)
    counts = Counter(a["tier"] for a in latest.values())
    order = [t for t in tiers if t in counts] + sorted(t for t in counts if t not in tiers)
    summary = " · ".join(f"{tier_badge(t)} {counts[t]}" for t in order)
    worst = sorted(latest.values(), key=lambda a: (float(a["score"]), a["account_id"]))[:WORST]
    lines = [
        f"{account_link(a['account_id'], link_template)}: {tier_badge(a.get('previous_tier'))}"
        f" → {tier_badge(a['tier'])}, score {float(a['score']):.1f}"
        for a in worst
    ]
    n, accounts = len(alerts), len(latest)
    title = (
        f"{n} tier change{'s' if n != 1 else ''} caught up on,"
        f" {accounts} account{'s' if accounts != 1 else ''}"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Health score digest:* {title}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Now:* {summary}"}},
    ]
    if lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Lowest scores:*\n" + "\n".join(lines)},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": escape(
                        "Catch-up alerts (a backlog or a replay) and first scores, one digest per"
                        f" {minutes:g} minutes instead of one message each."
                    ),
                }
            ],
        }
    )
    worst_tier = order[-1] if order else ""
    text = (
        f"Health score digest: {title} ("
        + ", ".join(f"{escape(t)} {counts[t]}" for t in order)
        + ")"
    )
    return {
        "text": text,
        "attachments": [{"color": COLOURS.get(worst_tier, OTHER_COLOUR), "blocks": blocks}],
    }


def _latest_per_account(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for a in alerts:
        held = latest.get(a["account_id"])
        if held is None or int(a.get("seq", 0)) >= int(held.get("seq", 0)):
            latest[a["account_id"]] = a
    return latest
