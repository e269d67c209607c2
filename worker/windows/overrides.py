"""An account's override state in its state hash (``keys.OVERRIDE``, one JSON field):
read with the account's other fields, written by the apply script with the override
records that change it (fenced by their offsets, in the same call as the batch's other
writes) or by a save when the clock expired it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson

from worker.scoring.override import OverrideState, receive
from worker.windows import keys

if TYPE_CHECKING:  # plan and resident import this module's neighbours, not it
    from worker.windows.plan import AccountPlan
    from worker.windows.resident import Resident


def parse(raw: bytes | None) -> OverrideState | None:
    return None if raw is None else OverrideState.from_dict(orjson.loads(raw))


def dumps(state: OverrideState) -> str:
    return orjson.dumps(state.as_dict()).decode()


def receive_all(plans: Sequence[AccountPlan], residents: Sequence[Resident]) -> None:
    """Each plan's override state after its override records, from its held account's."""
    for plan, resident in zip(plans, residents, strict=True):
        if plan.overrides:
            plan.override, plan.override_events = receive(
                resident.override, [(r.source.offset, r.body, r.ts) for r in plan.overrides]
            )


def field_sets(plan: AccountPlan) -> list[tuple[str, str]]:
    """The state hash fields the apply script sets for the plan's overrides."""
    return [] if plan.override is None else [(keys.OVERRIDE, dumps(plan.override))]
