"""Peer ranks in a batch: which accounts' values go to which peer sets, and when a
silent account's ranks are read again.

Only models with percentile components (``scoring.peers``) get one: the pipeline of
any other model does no peer work at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from worker.scoring.model import Model
from worker.scoring.peers import PeerRank, peer_group, percentile_components, refresh_at
from worker.scoring.segments import ModelSet
from worker.windows.peers import PeerUpdate
from worker.windows.store import AccountState, WindowStore


class PeerRanking:
    def __init__(self, models: ModelSet, refresh_seconds: float) -> None:
        self._ranked = {m.segment: percentile_components(m) for m in models.all()}
        self._all = frozenset(name for names in self._ranked.values() for name in names)
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
            tuple(self._all.difference(ranked)),
        )

    async def rank(
        self, store: WindowStore, updates: Sequence[PeerUpdate | None]
    ) -> list[dict[str, PeerRank]]:
        """Each account's ranks (empty where it has no update), one round trip for all."""
        sent = [u for u in updates if u is not None]
        found = iter(await store.peers.rank(sent) if sent else [])
        ranks = [{} if u is None else next(found) for u in updates]
        for u in sent:
            store.ranked_in(u.account_id, u.group)
        return ranks

    def next_change(
        self, account_id: str, now: float, next_change: float | None, ranks: Mapping[str, PeerRank]
    ) -> float | None:
        """When the account is rescored if it stays silent: by the refresh at the latest
        when it holds a rank, so its tier follows its peers."""
        if not ranks:
            return next_change
        refresh = refresh_at(account_id, now, self._refresh)
        return refresh if next_change is None else min(next_change, refresh)
