"""One alert as a Slack message (pure): Block Kit in an attachment carrying the tier's colour.

Every value from the alert is escaped for Slack's mrkdwn (``&``, ``<``, ``>``), so a
segment or component name can never become a link or a mention.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from worker.recoveryview import summary
from worker.scoring.curves import Percentile
from worker.scoring.model import Component, Model
from worker.scoring.trend import duration_words

COLOURS = {"green": "#2eb67d", "yellow": "#ecb22e", "red": "#e01e5a"}
EMOJI = {"green": ":large_green_circle:", "yellow": ":large_yellow_circle:", "red": ":red_circle:"}
OTHER_COLOUR, OTHER_EMOJI = "#868686", ":white_circle:"
TOP_COMPONENTS = 3


def escape(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def account_link(account_id: str, template: str) -> str:
    """The account as mrkdwn: a link into the CSM's tool when a template is set."""
    name = f"*{escape(account_id)}*"
    if not template:
        return name
    url = template.format(account_id=quote(account_id, safe=""))
    return f"<{escape(url)}|{name}>"


def tier_badge(tier: str | None, label: str | None = None) -> str:
    if tier is None:
        return "new"
    badge = f"{EMOJI.get(tier, OTHER_EMOJI)} {escape(tier)}"
    return f"{badge} ({escape(label)})" if label else badge


def number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def window_phrase(name: str, model: Model | None) -> str:
    """ " in 90 days" for the model's window of the component (" vs the previous 7 days"
    for a trend); "" if the model lacks it."""
    component = _component(name, model)
    if component is None or model is None:
        return ""
    words = duration_words(component.window_buckets * model.bucket_seconds)
    return f" in {words}" if component.trend is None else f" vs the previous {words}"


def _component(name: str, model: Model | None) -> Component | None:
    if model is None:
        return None
    try:
        return model.component(name)
    except KeyError:
        return None


def trigger_words(trigger: dict[str, Any] | None, model: Model | None) -> str:
    """The triggering component in plain words: "escalations rose from 0 to 3 in 90 days"."""
    if trigger is None:
        return "no single component"
    what = escape(str(trigger["name"]).replace("_", " ")) + _ranked(str(trigger["name"]), model)
    was, now = trigger["previous_value"], trigger["value"]
    window = window_phrase(str(trigger["name"]), model)
    component = _component(str(trigger["name"]), model)
    if component is not None and component.trend is not None:  # a change in percent
        return _trend_words(what, was, now, window)
    if was is None and now is None:
        return f"{what} changed"
    if was is None:
        return f"{what} is {number(now)}{window} (no data before)"
    if now is None:
        return f"{what} has no data{window} any more (was {number(was)})"
    if now == was:
        return f"{what} stayed at {number(now)}{window}"
    verb = "rose" if now > was else "fell"
    return f"{what} {verb} from {number(was)} to {number(now)}{window}"


def _trend_words(what: str, was: float | None, now: float | None, window: str) -> str:
    """ "login trend fell from -10% to -60% vs the previous 7 days"."""
    if now is None:
        return (
            f"{what} has nothing to compare with any more (was {was:+.0f}%)"
            if was is not None
            else f"{what} changed"
        )
    if was is None:
        return f"{what} is {now:+.0f}%{window}"
    verb = "rose" if now > was else "fell" if now < was else "stayed"
    if verb == "stayed":
        return f"{what} stayed at {now:+.0f}%{window}"
    return f"{what} {verb} from {was:+.0f}% to {now:+.0f}%{window}"


def _ranked(name: str, model: Model | None) -> str:
    """A percentile component's values are its ranks, not its raw values: say so."""
    try:
        ranked = model is not None and isinstance(model.component(name).curve, Percentile)
    except KeyError:
        return ""
    return " (percentile in its segment)" if ranked else ""


def override_words(alert: dict[str, Any]) -> str | None:
    """Why, when an override set, cleared or expired moved the tier; None otherwise."""
    kind, over = alert["cause"]["kind"], alert.get("override")
    if kind == "override_expired":
        return "an override expired"
    if kind != "override":
        return None
    if over is None:
        return "an override was cleared"
    return (
        f"override by {escape(over['author'])} until {escape(over['expires_at'])}:"
        f" {escape(over['reason'])}"
    )


def lifecycle_words(alert: dict[str, Any]) -> str | None:
    """Why, when the end of the account's onboarding moved the tier; None otherwise."""
    if alert["cause"]["kind"] != "onboarding_ended":
        return None
    segment = (alert.get("model") or {}).get("segment") or "default"
    return f"onboarding ended: scored by the {escape(segment)} model now"


def score_change(alert: dict[str, Any]) -> str:
    score, before = float(alert["score"]), alert.get("previous_score")
    if before is None:
        return f"{score:.1f}"
    return f"{float(before):.1f} → {score:.1f} ({score - float(before):+.1f})"


def top_components(alert: dict[str, Any], count: int = TOP_COMPONENTS) -> str:
    """The components that carry most of the score now, and the weakest ones."""
    components = alert.get("components") or {}
    ranked = sorted(components.items(), key=lambda kv: -float(kv[1]["contribution"]))
    weakest = sorted(components.items(), key=lambda kv: float(kv[1]["subscore"]))
    strong = ", ".join(
        f"{escape(n.replace('_', ' '))} {float(c['contribution']):.1f} pts"
        for n, c in ranked[:count]
    )
    weak = ", ".join(
        f"{escape(n.replace('_', ' '))} {float(c['subscore']):.0f}/100" for n, c in weakest[:count]
    )
    return f"Top contributions: {strong or 'none'} · Weakest: {weak or 'none'}"


def alert_message(alert: dict[str, Any], model: Model | None, link_template: str) -> dict[str, Any]:
    """The webhook payload for one alert: a plain ``text`` (notifications, screen readers)
    and the Block Kit layout, in an attachment for the tier's colour bar."""
    tier, previous = alert["tier"], alert.get("previous_tier")
    trigger = alert.get("triggering_component")
    overridden = override_words(alert) or lifecycle_words(alert)
    why = overridden or trigger_words(trigger, model)
    points = (
        ""
        if trigger is None or overridden
        else f" ({float(trigger['contribution_change']):+.1f} pts)"
    )
    headline = (
        f"{account_link(alert['account_id'], link_template)}: "
        f"{tier_badge(previous)} → *{tier_badge(tier, alert.get('tier_label'))}*"
    )
    segment = alert.get("segment")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Score*\n{score_change(alert)}"},
                {"type": "mrkdwn", "text": f"*Segment*\n{escape(segment or 'none')}"},
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Why:* {why}{points}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": top_components(alert)}]},
    ]
    recovery = alert.get("recovery")
    if recovery is not None:  # what would bring it back: the CSM's next step
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Next step:* {summary(recovery, quote=escape)}",
                },
            }
        )
    text = (
        f"{escape(alert['account_id'])}: {escape(previous or 'new')} -> {escape(tier)}"
        f" (score {score_change(alert)}): {why}"
    )
    return {
        "text": text,
        "attachments": [{"color": COLOURS.get(tier, OTHER_COLOUR), "blocks": blocks}],
    }
