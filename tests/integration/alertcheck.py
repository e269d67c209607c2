"""The checks of a run's alerts against the independent reference (``reference``):
each alert's content, each account's chain of alerts, and the end of the chain
against the account's final score."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.integration import reference as ref
from tests.integration.harness import valid_alert


@dataclass(slots=True)
class AlertCount:
    read: int = 0  # records on the topic
    distinct: int = 0  # distinct alert_ids
    republished: int = 0  # alert_ids on the topic more than once

    @property
    def duplicates(self) -> int:
        return self.read - self.distinct


def alert_chains(
    alerts: Iterable[dict[str, Any]],
) -> tuple[dict[str, list[dict[str, Any]]], AlertCount]:
    """Each account's alerts in publishing order, every alert_id once.

    ``alerts`` come in topic order: keyed by account, one account's alerts sit in
    one partition in the order they were published. An alert published again (from
    an outbox, after a crash) must be the very same record, every field of it: it is
    sent from what was saved, never decided again.
    """
    first: dict[str, dict[str, Any]] = {}
    times: dict[str, int] = defaultdict(int)
    order: dict[str, list[str]] = defaultdict(list)
    for alert in alerts:
        alert_id = alert["alert_id"]
        times[alert_id] += 1
        known = first.setdefault(alert_id, alert)
        if known is alert:
            order[alert["account_id"]].append(alert_id)
        assert known == alert, f"one alert_id, two alerts: {known} {alert}"
    count = AlertCount(sum(times.values()), len(first), sum(1 for n in times.values() if n > 1))
    return {a: [first[i] for i in ids] for a, ids in order.items()}, count


def check_alert(
    alert: dict[str, Any],
    before: dict[str, Any] | None,
    account: ref.Account,
    models: ref.Models = ref.ONLY_DEFAULT,
) -> None:
    """One alert's content against the reference: every sub-score and contribution from
    its component values, the score they roll up to, the tier that score moves the
    account to from the one before, and which component moved it how far; all by the
    model of the segment the alert names (``models``: the model file's)."""
    model = _model_of(alert, models)
    was_model = None if before is None else _model_of(before, models)
    now = {n: c["value"] for n, c in alert["components"].items()}
    was = None if before is None else {n: c["value"] for n, c in before["components"].items()}
    total = ref.score(now, model)
    assert total is not None, alert
    assert set(now) <= set(model.by_name), alert
    weights = sum(model.by_name[n].weight for n in now)
    for name, c in alert["components"].items():
        sub = model.by_name[name].curve(c["value"])
        assert c["weight"] == model.by_name[name].weight, (name, alert)
        assert abs(c["subscore"] - sub) <= ref.ROUNDING, (name, sub, alert)
        assert abs(c["contribution"] - c["weight"] * sub / weights) <= ref.ROUNDING, (name, alert)
    assert abs(alert["score"] - total) <= ref.ROUNDING, (total, alert)
    previous = None if before is None else before["tier"]
    # A catch-up evaluation, and the first live one after it, take the plain tier of the
    # score; only a live one after a live one keeps the margin (README, Tiers). An alert
    # that says it came from a catch-up must have the plain tier.
    # Across a change of model the worker drops the margin for the update that moved it
    # (the plain tier); the held one is of the new model's boundaries.
    switched = was_model is not None and was_model != model
    plain, held = ref.tier_of(now, None, model), ref.tier_of(now, previous, model)
    allowed = {plain} if alert.get("delivery") == "catch_up" else {plain, held}
    assert alert["previous_tier"] == previous, alert
    assert alert["tier"] in allowed, f"score {total} from {previous}: {alert}"
    assert alert["tier"] != previous
    labels = {n: label for n, label, _ in model.tiers} | dict([ref.UNKNOWN])
    assert alert["tier_label"] == labels[alert["tier"]]
    assert alert["previous_score"] == (None if before is None else before["score"]), alert
    assert alert["model_version"] == models.version, alert
    # The segment is the one known when the alert was decided: maybe none yet.
    assert alert["segment"] in (None, account.attrs.get("segment")), alert
    _check_trigger(alert, was, now, model, was_model)
    _check_recovery(alert, now, model)
    cause = alert["cause"]
    kinds = {e.body["event_id"]: e.type for e in account.events}
    if cause["kind"] == "account_update":
        # The segment record that moved it to this model; or, without a switch, the
        # account's record whose evaluation changed the tier: the first live one after a
        # catch-up takes the plain tier (README, Tiers), so an update alone can move it.
        assert switched or alert["delivery"] == "live", alert
        assert cause["event_id"] is None, alert
        assert cause["offset"] is not None, alert
        return
    assert cause["kind"] == "event", alert
    assert kinds.get(cause["event_id"]) == cause["event_type"], alert


def _model_of(alert: dict[str, Any], models: ref.Models) -> ref.Model:
    """The model the alert names, which must be the one of the segment it names."""
    model = models.of_segment(alert["segment"])
    if models.segments or "model" in alert:
        assert alert["model"] == {"version": models.version, "segment": model.name}, alert
    return model


def _check_recovery(alert: dict[str, Any], now: dict[str, float], model: ref.Model) -> None:
    """The alert's next steps, by the reference: the tier above, its bar plus the margin,
    and each change, alone or all together, lifts the reference score to it."""
    names = [name for name, _, _ in model.tiers]
    recovery = alert.get("recovery")
    if alert["tier"] not in names[1:]:
        assert recovery is None, alert  # the best tier, or unknown: nothing to climb to
        return
    if recovery is None:  # no change of the components can get there
        return
    above = model.tiers[names.index(alert["tier"]) - 1]
    assert (recovery["tier"], recovery["score"]) == (above[0], above[2] + model.margin), alert
    changed = dict(now)
    for change in recovery["changes"]:
        step = 1e-9 if change["op"] == ">" else 0.0
        target = change["target"] + step
        if recovery["alone"]:
            lifted = ref.score({**now, change["component"]: target}, model)
            assert lifted is not None, alert
            assert lifted >= recovery["score"] - 1e-9, (change, lifted, alert)
        changed[change["component"]] = target
    together = ref.score(changed, model)
    assert together is not None, alert
    assert together >= recovery["score"] - 1e-9, alert


def _check_trigger(
    alert: dict[str, Any],
    was: dict[str, float] | None,
    now: dict[str, float],
    model: ref.Model,
    was_model: ref.Model | None,
) -> None:
    changes = ref.attribution(was, now, model, was_model)
    # Into unknown counts as down; from unknown, as from no tier (README, Missing data).
    previous = alert["previous_tier"]
    down = alert["tier"] == ref.UNKNOWN[0] or ref.rank(alert["tier"], model) > (
        0 if previous in (None, ref.UNKNOWN[0]) else ref.rank(previous, model)
    )
    sign = -1.0 if down else 1.0
    strongest = max(sign * change for change in changes.values())
    trigger = alert["triggering_component"]
    name = trigger["name"]
    # Ties (to the last bits) may go either way; the README promises the strongest push.
    assert name in changes, (changes, alert)
    assert sign * changes[name] >= strongest - 1e-9, (changes, alert)
    assert abs(trigger["contribution_change"] - changes[name]) <= ref.ROUNDING, (changes, alert)
    assert (trigger["previous_value"], trigger["value"]) == (
        None if was is None else was.get(name),
        now.get(name),
    ), alert
    assert trigger["weight"] == (model if name in now else was_model or model).by_name[name].weight


def check_chain(
    account_id: str,
    chain: list[dict[str, Any]],
    published: dict[str, Any] | None,
    account: ref.Account,
    final: ref.Card,
    models: ref.Models = ref.ONLY_DEFAULT,
) -> None:
    """Every tier change of a clean run is on the topic, once de-duplicated by alert_id.

    Which intermediate tiers an account passes through depends on where batches
    end (it is rescored once per batch, and batches are cut differently after a
    kill), so no fixed list of changes can be expected. What a clean run does
    guarantee, and this checks: each alert is right for the component values it
    reports (``check_alert``); the changes form one unbroken chain (seq 1..n, each
    starting from the tier and score the one before ended in, the first from none);
    the last is the tier the worker saved as published (``pub`` in Redis, with the
    same score and components); and from that tier the reference's final score,
    hysteresis included, moves nowhere (true of the plain tier a catch-up leaves too). So no change was lost, neither in between
    (a gap) nor at the end (a final tier left unpublished).
    """
    shown = [(a["seq"], a["previous_tier"], a["tier"], a["score"]) for a in chain]
    assert [a["seq"] for a in chain] == list(range(1, len(chain) + 1)), (
        f"{account_id}: seqs not 1..n in (seq, from, to, score) {shown}"
    )
    for before, alert in zip([None, *chain[:-1]], chain, strict=True):
        check_alert(alert, before, account, models)
    assert published is not None, f"{account_id}: alerts {shown} but no published tier saved"
    last = chain[-1]
    assert (last["seq"], last["tier"], last["score"]) == (
        published["seq"],
        published["tier"],
        round(published["score"], 2),
    ), f"{account_id}: alerts {shown} but saved {published}"
    assert {n: c["value"] for n, c in last["components"].items()} == {
        n: value for n, (value, _, _) in published["components"].items()
    }, (last, published)
    assert final.score is not None
    moved = ref.tier_of(
        final.values, published["tier"], models.of_segment(account.attrs.get("segment"))
    )
    assert moved == published["tier"], (
        f"{account_id}: final score {final.score} should move it from {published['tier']} "
        f"to {moved}"
    )


def check_alerts(
    alerts: list[dict[str, Any]],
    published: dict[str, dict[str, Any] | None],
    accounts: dict[str, ref.Account],
    finals: dict[str, ref.Card],
    models: ref.Models = ref.ONLY_DEFAULT,
) -> AlertCount:
    """Every tier change on the topic, at least once, and right (see ``check_chain``).

    ``published``: each account's last published tier as the worker saved it;
    ``finals``: each account's reference scores at the end.
    """
    assert all(valid_alert(a) for a in alerts), [a for a in alerts if not valid_alert(a)][:3]
    chains, count = alert_chains(alerts)
    assert set(chains) <= set(finals), f"alerts for unknown accounts {set(chains) - set(finals)}"
    failures = []
    for account_id, final in finals.items():
        try:
            assert account_id in chains, f"{account_id}: has events but no alert"
            check_chain(
                account_id,
                chains[account_id],
                published[account_id],
                accounts[account_id],
                final,
                models,
            )
        except AssertionError as failure:
            failures.append(str(failure))
    assert not failures, (
        f"{len(failures)} of {len(finals)} accounts' alerts are wrong ({count}); e.g. {failures[0]}"
    )
    return count
