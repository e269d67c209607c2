"""Peer-relative components: an account's percentile rank among its segment's accounts.

A component whose curve is ``Percentile`` scores where the account's raw value
stands among the raw values of its peer group: the accounts with the same
``segment`` attribute (accounts without one are a group of their own). The
counts come from outside (``windows.peers`` keeps one sorted set per group and
component in Redis); what they mean is decided here, with no I/O, and scoring
takes the percentile as the component's value, so every other part of scoring
(roll-up, tiers, attribution) treats it like any other value.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from worker.scoring.curves import Percentile
from worker.scoring.model import Model

NO_SEGMENT = ""  # the peer group of accounts without a segment (a segment is never empty)


class PeerRank(NamedTuple):
    """Where a raw value stands in its group, the account itself included."""

    below: int  # peers with a lower value
    equal: int  # peers with the same value, the account itself among them
    peers: int  # the whole group

    @property
    def percentile(self) -> float:
        """100 x (below + half the ties) / peers: the middle of the account's run of equal
        values, so a group of equals, and an account alone in its group, is at 50."""
        if self.peers <= 0:  # only a set changed under the read can say so: the middle
            return 50.0
        return 100.0 * (self.below + self.equal / 2.0) / self.peers


def percentile_components(model: Model) -> tuple[str, ...]:
    """The names of the model's components scored on their rank among peers."""
    return tuple(c.name for c in model.components if isinstance(c.curve, Percentile))


def peer_group(attrs: Mapping[str, Any]) -> str:
    """The account's peer group: its segment, or ``NO_SEGMENT``."""
    segment = attrs.get("segment")
    return segment if isinstance(segment, str) and segment else NO_SEGMENT


def with_ranks(
    names: Iterable[str], values: Mapping[str, float], ranks: Mapping[str, PeerRank]
) -> dict[str, float]:
    """``values`` as scoring takes them: each percentile component's (``names``: the
    model's ``percentile_components``) raw value replaced by its percentile. One with a
    value but no rank (its group could not be read) is left out, like a component
    without data, rather than guessed."""
    scored = dict(values)
    for name in names:
        if name in scored:
            rank = ranks.get(name)
            if rank is None:
                del scored[name]
            else:
                scored[name] = rank.percentile
    return scored


def refresh_at(account_id: str, now: float, every: float) -> float:
    """When the account's ranks are read again at the latest, if it stays silent: the
    next moment after ``now`` in its own phase of ``every`` seconds. At most ``every``
    from now, the same for every rescore within one period (so the due schedule is not
    rewritten by each), and spread over the period by account rather than all at once."""
    phase = zlib.crc32(account_id.encode()) % 1_000_000 / 1_000_000 * every
    periods = (now - phase) // every + 1
    return phase + periods * every
