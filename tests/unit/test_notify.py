"""The Slack notifier's pure parts: Block Kit formatting, filters and routes, the digest,
commit positions, and its configuration."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.slackhook import make_alert
from worker.contracts import validator
from worker.errors import ConfigError
from worker.modelfile import load_model
from worker.notify.config import Filters, notify_config
from worker.notify.digest import Digest, digest_message
from worker.notify.format import alert_message, trigger_words
from worker.notify.offsets import Offsets
from worker.notify.route import Route, route
from worker.settings import Settings

MODEL = load_model()
TIERS = [t.name for t in MODEL.tiers]
NOW = time.time()  # the parameters below are built with ts = now


def trigger(previous: float | None, value: float | None, name: str = "escalations") -> dict:
    return {
        "name": name,
        "previous_subscore": None,
        "subscore": None,
        "previous_value": previous,
        "value": value,
        "weight": 1.0,
        "contribution_change": -10.0,
    }


@pytest.mark.parametrize(
    ("previous", "value", "words"),
    [
        (0.0, 3.0, "escalations rose from 0 to 3 in 90 days"),
        (3.0, 1.0, "escalations fell from 3 to 1 in 90 days"),
        (None, 2.0, "escalations is 2 in 90 days (no data before)"),
        (2.0, None, "escalations has no data in 90 days any more (was 2)"),
        (0.456, 0.25, "escalations fell from 0.456 to 0.25 in 90 days"),
    ],
)
def test_trigger_in_plain_words(previous: float | None, value: float | None, words: str) -> None:
    assert trigger_words(trigger(previous, value), MODEL) == words


def test_trigger_words_name_the_window_of_the_component_and_without_a_model_none() -> None:
    assert trigger_words(trigger(10, 4, "login_frequency"), MODEL) == (
        "login frequency fell from 10 to 4 in 30 days"
    )
    assert trigger_words(trigger(10, 4, "login_frequency"), None) == (
        "login frequency fell from 10 to 4"
    )
    assert trigger_words(trigger(1, 2, "not_in_model"), MODEL) == "not in model rose from 1 to 2"


def test_alert_message_has_tier_colour_label_score_change_trigger_and_link() -> None:
    alert = make_alert("acme", segment="mid_market")
    msg = alert_message(alert, MODEL, "https://crm.example.com/accounts/{account_id}")
    attachment = msg["attachments"][0]
    assert attachment["color"] == "#e01e5a"
    text = str(attachment["blocks"])
    assert "<https://crm.example.com/accounts/acme|*acme*>" in text
    assert ":large_green_circle: green → *:red_circle: red (Requires attention)*" in text
    assert "80.0 → 26.3 (-53.7)" in text
    assert "escalations rose from 0 to 3 in 90 days (-43.9 pts)" in text
    assert "Top contributions: support tickets 26.3 pts, escalations 0.0 pts" in text
    assert msg["text"].startswith("acme: green -> red (score 80.0 → 26.3 (-53.7))")


def test_the_next_step_is_one_short_line_and_absent_without_hints() -> None:
    alert = make_alert("acme")
    assert "Next step" not in str(alert_message(alert, MODEL, "")["attachments"][0]["blocks"])
    alert["recovery"] = {
        "tier": "yellow",
        "score": 43.0,
        "alone": True,
        "changes": [
            {
                "component": "escalations",
                "value": 3.0,
                "op": "<=",
                "target": 1.0,
                "subscore": 0.0,
                "target_subscore": 60.0,
            },
            {
                "component": "<!here>",
                "value": None,
                "op": ">=",
                "target": 10.25,
                "subscore": None,
                "target_subscore": 55.1,
            },
        ],
    }
    assert validator("alert").is_valid(alert)
    blocks = alert_message(alert, MODEL, "")["attachments"][0]["blocks"]
    lines = [b["text"]["text"] for b in blocks if "Next step" in str(b)]
    assert lines == [
        "*Next step:* back to yellow: escalations from 3 to at most 1, or "
        "&lt;!here&gt; (no data) at least 10.3"
    ]


def test_values_cannot_become_links_or_mentions() -> None:
    alert = make_alert("acme", segment="<!channel> & <https://evil|x>")
    text = str(alert_message(alert, MODEL, "")["attachments"][0]["blocks"])
    assert "<!channel>" not in text
    assert "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil|x&gt;" in text


def test_account_ids_are_quoted_into_the_link() -> None:
    msg = alert_message(make_alert("a:b@c"), MODEL, "https://crm/x?id={account_id}")
    assert "https://crm/x?id=a%3Ab%40c|" in str(msg)


@pytest.mark.parametrize(
    ("filters", "alert", "expected"),
    [
        (Filters(), make_alert("a"), Route.POST),
        (Filters(tiers=frozenset({"yellow"})), make_alert("a", tier="red"), Route.DROP),
        (Filters(tiers=frozenset({"red"})), make_alert("a", tier="red"), Route.POST),
        (
            Filters(direction="down"),
            make_alert("a", previous_tier="red", tier="green", score=80, previous_score=20),
            Route.DROP,
        ),
        (
            Filters(direction="up"),
            make_alert("a", previous_tier="red", tier="green", score=80, previous_score=20),
            Route.POST,
        ),
        (Filters(direction="down"), make_alert("a"), Route.POST),
        (Filters(segments=frozenset({"smb"})), make_alert("a", segment=None), Route.DROP),
        (Filters(segments=frozenset({"smb"})), make_alert("a", segment="smb"), Route.POST),
        (Filters(), make_alert("a", delivery="catch_up"), Route.DIGEST),
        (Filters(), make_alert("a", delivery="live"), Route.POST),
        (Filters(), make_alert("a", seq=1, previous_tier=None, previous_score=None), Route.DIGEST),
        (
            Filters(direction="down"),
            make_alert("a", seq=1, previous_tier=None, tier="green", previous_score=None, score=90),
            Route.DROP,
        ),
        (Filters(), make_alert("a", ts=NOW - 301), Route.DIGEST),  # read late: stale news
    ],
)
def test_routes(filters: Filters, alert: dict, expected: Route) -> None:
    assert route(alert, filters, TIERS, now=NOW, stale_after=300) is expected


def test_digest_counts_each_accounts_latest_tier_and_lists_the_lowest_scores() -> None:
    alerts = [
        make_alert("a", seq=2, tier="yellow", score=50),
        make_alert("a", seq=3, score=10),
        make_alert("b", tier="green", previous_tier="red", score=90),
        make_alert("c", score=30),
    ]
    msg = digest_message(alerts, 10, "", TIERS)
    assert msg["text"] == (
        "Health score digest: 4 tier changes caught up on, 3 accounts (green 1, red 2)"
    )
    lowest = msg["attachments"][0]["blocks"][2]["text"]["text"]
    assert lowest.index("*a*") < lowest.index("*c*") < lowest.index("*b*")
    assert msg["attachments"][0]["color"] == "#e01e5a"


def test_digest_holds_each_alert_once_and_forgets_lost_partitions() -> None:
    digest, alert = Digest(), make_alert("a")
    digest.add(alert, ("t", 0, 5), now=100.0)
    digest.add(alert, ("t", 0, 9), now=101.0)  # a re-sent copy
    digest.add(make_alert("b"), ("t", 1, 3), now=102.0)
    assert len(digest) == 2
    assert len(digest.places) == 3
    assert not digest.due(159.9, 60)
    assert digest.due(160.0, 60)
    digest.drop_partitions({("t", 0)})
    assert [a["account_id"] for a in digest.alerts] == ["b"]
    assert digest.places == [("t", 1, 3)]


def test_commits_never_pass_a_record_held_for_the_digest() -> None:
    offsets = Offsets()
    offsets.done(("t", 0), 4)
    offsets.hold(("t", 0), 5)
    offsets.done(("t", 0), 6)
    offsets.done(("t", 1), 0)
    assert offsets.to_commit() == {("t", 0): 5, ("t", 1): 1}
    offsets.committed({("t", 0): 5, ("t", 1): 1})
    assert offsets.to_commit() == {}
    offsets.release([("t", 0, 5)])
    assert offsets.to_commit() == {("t", 0): 7}


def test_webhook_from_a_secrets_file(tmp_path: Path) -> None:
    secret = tmp_path / "hook"
    secret.write_text("https://hooks.slack.com/services/T/B/x\n")
    config = notify_config(Settings(slack_webhook_file=str(secret)))
    assert config.webhook_url == "https://hooks.slack.com/services/T/B/x"
    assert "hooks.slack.com" not in repr(config)
    assert "hooks.slack.com" not in repr(Settings(slack_webhook_url=config.webhook_url))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "no Slack webhook"),
        ({"slack_webhook_url": "https://a", "slack_webhook_file": "/x"}, "not both"),
        ({"slack_webhook_url": "hooks.slack.com/x"}, "must start with https://"),
        (
            {"slack_webhook_url": "https://a", "notify_direction": "sideways"},
            "HEALTHSCORE_NOTIFY_DIRECTION",
        ),
        (
            {"slack_webhook_url": "https://a", "notify_digest_minutes": 0.0},
            "HEALTHSCORE_NOTIFY_DIGEST_MINUTES",
        ),
        (
            {"slack_webhook_url": "https://a", "slack_link_template": "https://x/{id}"},
            "only {account_id}",
        ),
    ],
)
def test_bad_configuration_is_refused_by_name(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        notify_config(Settings(**changes))
