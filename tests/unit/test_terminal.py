"""What the CLI prints from input is text: no markup, no terminal control, whatever it holds."""

from __future__ import annotations

import io
import unicodedata
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from rich.console import Console

from worker.commands import _print_explanation, alert_line, print_alert
from worker.terminal import visible

HOSTILE = [
    "[/]",
    "[link=http://x]click[/link]",
    "\x1b[31m",
    "a\nb",
    "\r",
    ":smile:",
    "[bold]",
    "\\",
    "\u2028",
    "\x9b31m",
]
# Attribute values as producers may send them (the schema allows any string).
values = st.text(max_size=80) | st.sampled_from(HOSTILE)


def _render(data: dict[str, Any]) -> str:
    out = io.StringIO()
    # Wide and soft-wrapped: a value is never broken across lines, so it can be found.
    _print_explanation(data, Console(file=out, width=10_000, soft_wrap=True, force_terminal=False))
    return out.getvalue()


def _explanation(account: str, segment: str, plan: str, component: str) -> dict[str, Any]:
    return {
        "account_id": account,
        "at": "2026-11-22T09:30:00.000+00:00",
        "model_version": "default-2026.11",
        "segment": segment,
        "score": 55.0,
        "tier": "yellow",
        "published_tier": "yellow",
        "published_seq": 3,
        "attributes": {"segment": segment, "plan": plan, "seats_purchased": 4},
        "components": [
            {
                "name": component,
                "description": "",
                "value": 2.0,
                "subscore": 50.0,
                "weight": 1.0,
                "contribution": 55.0,
            }
        ],
    }


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def _controls(text: str) -> list[str]:
    """Control characters in printed output, but for the line ends between lines."""
    return [c for c in text if c != "\n" and _hidden(c)]


@given(account=values, segment=values, plan=values)
@example(account="[/]", segment="[link=http://x]click[/link]", plan="\x1b[31mred\nline")
def test_explain_prints_every_value_as_text(account: str, segment: str, plan: str) -> None:
    text = _render(_explanation(account, segment, plan, "login_frequency"))
    assert _controls(text) == []  # no ESC, CR, no LF but rich's own line ends
    header = text.splitlines()[0]
    assert header.startswith(f"{visible(account)} ({visible(segment)}): score 55.0")
    assert f"plan={visible(plan)}," in text


@given(account=values)
def test_explain_of_an_unknown_account_prints_the_id_as_text(account: str) -> None:
    data = {**_explanation(account, "x", "y", "c"), "score": None, "attributes": {}}
    text = _render(data)
    assert text == f"{visible(account)}: no data in any window (unknown account?)\n"


def test_component_names_are_text_too() -> None:
    assert "[/]" in _render(_explanation("a", "b", "c", "[/]"))


@given(text=values | st.text(st.characters(codec=None), max_size=20))
def test_visible_writes_out_exactly_the_control_characters(text: str) -> None:
    # Python's own escapes as the reference: \x1b, \n, \u2028, \U000e0001, \ud800.
    expected = "".join(
        c.encode("unicode_escape").decode("ascii") if _hidden(c) else c for c in text
    )
    assert visible(text) == expected
    assert not any(_hidden(c) for c in visible(text))


def _alert(account: str, tier: str = "red", trigger: str = "escalations") -> dict[str, Any]:
    return {
        "account_id": account,
        "previous_tier": "green",
        "tier": tier,
        "score": 20.0,
        "previous_score": 80.0,
        "cause": {"kind": "event", "event_type": "ticket"},
        "triggering_component": {"name": trigger, "contribution_change": -60.0},
    }


@given(account=values, trigger=values)
@example(account="[/]", trigger="\x1b]8;;http://x\x1b\\click")
def test_alert_lines_are_one_line_of_text(account: str, trigger: str) -> None:
    line = alert_line(_alert(account, trigger=trigger))
    assert not any(_hidden(c) for c in line)
    assert line.startswith(
        f"{visible(account)}: green -> red (score 80.0 -> 20.0) trigger {visible(trigger)} "
    )


@given(account=values, trigger=values)
def test_a_first_score_reads_as_one(account: str, trigger: str) -> None:
    alert = {
        **_alert(account, tier="yellow", trigger=trigger),
        "previous_tier": None,
        "previous_score": None,
        "score": 65.74,
    }
    alert["triggering_component"]["contribution_change"] = -10.1
    line = alert_line(alert)
    assert not any(_hidden(c) for c in line)
    assert line == (
        f"{visible(account)}: first scored yellow (score 65.7), lowest {visible(trigger)}"
    )


@pytest.mark.parametrize(
    ("change", "pull"), [(12.5, ", highest nps"), (-3.0, ", lowest nps"), (0.0, "")]
)
def test_a_first_score_names_what_pulls_it_furthest(change: float, pull: str) -> None:
    alert = {
        **_alert("acme", tier="green", trigger="nps"),
        "previous_tier": None,
        "previous_score": None,
        "score": 88.0,
    }
    alert["triggering_component"]["contribution_change"] = change
    assert alert_line(alert) == f"acme: first scored green (score 88.0){pull}"
    assert (
        alert_line({**alert, "triggering_component": None})
        == "acme: first scored green (score 88.0)"
    )


def test_a_change_reads_from_tier_to_tier() -> None:
    alert = {
        **_alert("acct-00057", tier="yellow"),
        "score": 65.7,
        "previous_score": 78.8,
        "cause": {"kind": "event", "event_type": "survey"},
    }
    alert["triggering_component"]["contribution_change"] = -10.1
    assert alert_line(alert) == (
        "acct-00057: green -> yellow (score 78.8 -> 65.7) trigger "
        "escalations (-10.1 pts) after survey"
    )


@pytest.mark.parametrize("account", HOSTILE)
def test_alerts_command_prints_an_alert_literally(
    account: str, capsys: pytest.CaptureFixture[str]
) -> None:
    print_alert(orjson.dumps(_alert(account, tier="at_risk")), as_json=False)
    out = capsys.readouterr().out
    assert out == alert_line(_alert(account, tier="at_risk")) + "\n"
    assert "\x1b" not in out


@pytest.mark.parametrize("value", [b"not json", b"[1]", b'{"tier": "red"}', None])
def test_alerts_command_skips_what_is_not_an_alert(
    value: bytes | None, capsys: pytest.CaptureFixture[str]
) -> None:
    print_alert(value, as_json=False)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("healthscore: skipped a record that is not an alert")
