"""``healthscore explain ACCOUNT``: an account's score, tier and why, from live state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.clock import Clock
from worker.scoring.evaluate import component_values
from worker.scoring.model import Model
from worker.scoring.rollup import Scorecard, rounded, score_components
from worker.scoring.tiers import next_tier
from worker.timefmt import rfc3339
from worker.windows.store import WindowStore


@dataclass(frozen=True, slots=True)
class Explanation:
    account_id: str
    at: float
    model: Model
    card: Scorecard
    attrs: dict[str, Any]
    published: dict[str, Any] | None

    @property
    def known(self) -> bool:
        return bool(self.card.components) or bool(self.attrs) or self.published is not None

    def as_dict(self) -> dict[str, Any]:
        score = self.card.score
        published = self.published or {}
        return {
            "account_id": self.account_id,
            "at": rfc3339(self.at),
            "model_version": self.model.version,
            "segment": self.attrs.get("segment"),
            "attributes": self.attrs,
            "score": None if score is None else rounded(score),
            # The tier the score maps to now, from the published tier with hysteresis.
            "tier": None if score is None else next_tier(
                self.model, score, published.get("tier")).name,
            "published_tier": published.get("tier"),
            "published_seq": published.get("seq"),
            "components": [self._component(c.name) for c in self.model.components],
        }

    def _component(self, name: str) -> dict[str, Any]:
        component = self.model.component(name)
        present = self.card.components.get(name)
        return {
            "name": name,
            "description": component.description,
            "value": None if present is None else present.value,
            "subscore": None if present is None else rounded(present.subscore),
            "weight": component.weight,
            "contribution": None if present is None else rounded(self.card.contribution(name)),
        }


async def explain(store: WindowStore, model: Model, account_id: str, clock: Clock) -> Explanation:
    """Recompute every component from the windows as they are now (writes nothing)."""
    now = clock.now()
    state = await store.read(account_id, now)
    values = component_values(model, state.windows, state.attrs, state.seen, {}, None)
    return Explanation(account_id, now, model, score_components(model, values),
                       state.attrs, state.published)
