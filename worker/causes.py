"""Which record an alert names as its cause (``alerts.Cause``): the one that moved the
account, so a CSM can find it; chosen per evaluation, pure."""

from __future__ import annotations

from worker.alerts import Cause
from worker.events.types import AccountUpdate, Event, Record
from worker.scoring.model import Model
from worker.scoring.tierchange import TierChange


def cause_of(model: Model, records: list[Record],
           change: TierChange, *, switched: bool = False) -> Cause:
    """The batch's last record that fed the triggering component, else its last record;
    the account update that moved the account to another segment model (``switched``)."""
    if switched:
        return Cause.of(next(r for r in reversed(records) if isinstance(r, AccountUpdate)))
    if change.trigger is not None:
        signal = model.component(change.trigger.name).signal
        for record in reversed(records):
            if isinstance(record, Event) and record.type in signal.sources:
                return Cause.of(record)
            if isinstance(record, AccountUpdate) and signal.attributes:
                return Cause.of(record)
    return Cause.of(records[-1])


def fixed(cause: Cause, _model: Model, _change: TierChange, _switched: bool) -> Cause:
    return cause
