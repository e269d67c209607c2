"""Which record an alert names as its cause (``alerts.Cause``): the one that moved the
account, so a CSM can find it; chosen per evaluation, pure."""

from __future__ import annotations

from worker.alerts import Cause
from worker.events.types import AccountUpdate, Event, Record
from worker.scoring.model import Model
from worker.scoring.signals import Signal
from worker.scoring.tierchange import TierChange


def cause_of(
    model: Model, records: list[Record], change: TierChange, *, switched: bool = False
) -> Cause:
    """The batch's last record that fed the triggering component, else its last record;
    the account update that moved the account to another segment model (``switched``)."""
    if switched:
        return Cause.of(next(r for r in records[::-1] if isinstance(r, AccountUpdate)))
    # The trigger may be a component only of the last published scorecard: an account
    # that moved to a segment model without it (onboarding has no nps), when the update
    # that moved it left its tier as it was. No record of the model feeds it then.
    signal = None if change.trigger is None else _signal(model, change.trigger.name)
    if signal is not None:
        for record in records[::-1]:  # not reversed(): mypyc fails on it here
            if isinstance(record, Event) and record.type in signal.sources:
                return Cause.of(record)
            if isinstance(record, AccountUpdate) and signal.attributes:
                return Cause.of(record)
    return Cause.of(records[-1])


def fixed(cause: Cause, _model: Model, _change: TierChange, _switched: bool) -> Cause:
    return cause


def _signal(model: Model, component: str) -> Signal | None:
    """The signal of the model's ``component``; None when the model has no such one."""
    return next((c.signal for c in model.components if c.name == component), None)
