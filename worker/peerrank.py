"""Peer ranks in a batch: which accounts' values go to which peer sets, and when a
silent account's ranks are read again.

Only models with percentile components (``scoring.peers``) get one: the pipeline of
any other model does no peer work at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from worker.scoring.model import Model
from worker.scoring.peers import (
    PeerRank,
    peer_group,
    percentile_components,
    refresh_at,
    with_ranks,
)
from worker.scoring.segments import ModelSet
from worker.windows.peers import PeerUpdate
from worker.windows.state import AccountState
from worker.windows.store import WindowStore


class PeerRanking:
    def __init__(self, models: ModelSet, refresh_seconds: float) -> None:
        self._ranked = {m.segment: percentile_components(m) for m in models.all()}
        self._all = frozenset(name for names in self._ranked.values() for name in names)
        # Per model: the components another model ranks (this one's accounts leave them).
        self._others = {
            segment: tuple(sorted(self._all.difference(names)))
            for segment, names in self._ranked.items()
        }
        self._refresh = refresh_seconds

    @classmethod
    def of(cls, models: ModelSet, refresh_seconds: float) -> PeerRanking | None:
        """None for models without a percentile component: nothing to rank."""
        ranking = cls(models, refresh_seconds)
        return ranking if ranking._all else None

    def update(
        self, model: Model, state: AccountState, values: Mapping[str, float]
    ) -> PeerUpdate | None:
        """What the account's scoring writes to and reads from the peer sets; None when it
        has nothing there and nothing to put there (its model ranks none)."""
        ranked = self._ranked.get(model.segment, ())
        if not ranked and state.peer_group is None:
            return None
        return PeerUpdate(
            state.account_id,
            peer_group(state.attrs),
            state.peer_group,
            values,
            ranked,
            self._others.get(model.segment, ()),
        )

    def scored(
        self, model: Model, values: Mapping[str, float], ranks: Mapping[str, PeerRank]
    ) -> dict[str, float]:
        """The values scoring takes: each percentile component at its percentile."""
        return with_ranks(self._ranked.get(model.segment, ()), values, ranks)

    async def rank(
        self, store: WindowStore, updates: Sequence[PeerUpdate | None]
    ) -> list[dict[str, PeerRank]]:
        """Each account's ranks (empty where it has no update), one round trip for all."""
        sent = [u for u in updates if u is not None]
        if not sent:
            return [{} for _ in updates]
        found, groups = await store.peers.rank(sent)
        for u, group in zip(sent, groups, strict=True):
            if group != u.before:
                store.ranked_in(u.account_id, group)
        ranked = iter(found)
        return [{} if u is None else next(ranked) for u in updates]

    def next_change(
        self, account_id: str, now: float, next_change: float | None, ranks: Mapping[str, PeerRank]
    ) -> float | None:
        """When the account is rescored if it stays silent: by the refresh at the latest
        when it holds a rank, so its tier follows its peers. Not an account with nothing
        left in any window: it is not rescored at all until its next record (as a model
        change does not), so the peers of a segment's long-gone accounts cost nothing."""
        if not ranks or next_change is None:  # nothing left in its windows: left as it is
            return next_change
        refresh = refresh_at(account_id, now, self._refresh)
        return refresh if next_change is None else min(next_change, refresh)
