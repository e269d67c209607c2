"""``healthscore explain ACCOUNT``: an account's score, tier and why, from live state."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from worker.clock import Clock
from worker.outlook import Outlook, outlook
from worker.overriding import shown
from worker.scoring import override
from worker.scoring.coverage import enough_data
from worker.scoring.evaluate import component_values
from worker.scoring.mode import Mode, hysteresis_applies
from worker.scoring.model import Component, Model
from worker.scoring.peers import PeerRank, peer_group, percentile_components, with_ranks
from worker.scoring.recovery import recovery
from worker.scoring.rollup import Scorecard, rounded, score_components
from worker.scoring.segments import ModelSet, as_model_set, model_name
from worker.scoring.tierchange import Published, new_tier
from worker.scoring.trend import describe, duration_words
from worker.timefmt import rfc3339
from worker.windows.store import WindowStore


@dataclass(frozen=True, slots=True)
class Explanation:
    account_id: str
    at: float
    model: Model
    card: Scorecard
    attrs: dict[str, Any]
    published: Published | None
    last_mode: Mode = Mode.LIVE  # of the account's last evaluation
    # component -> the distinct sets it reads whose count is a lower bound in its window
    # (the account reached HEALTHSCORE_MAX_DISTINCT_MEMBERS)
    capped: dict[str, list[str]] = field(default_factory=dict)
    # event type -> the newest bucket with an event of it (seen:<type>); 1 is a flag
    # an older version wrote: seen, when unknown
    seen_bucket: dict[str, int] = field(default_factory=dict)
    overrides: override.OverrideState | None = None
    # What would bring it back (below the best tier, not pinned), with dates.
    outlook: Outlook | None = None
    # Percentile component -> (its raw value, its rank among the account's peers)
    peers: dict[str, tuple[float, PeerRank]] = field(default_factory=dict)

    def last_events(self) -> dict[str, str | None]:
        """Event type -> the start of the newest time bucket holding an event of it
        (RFC 3339), None for a type seen before this was kept; types never seen left out."""
        seconds = self.model.bucket_seconds
        return {
            t: None if b <= 1 else rfc3339(b * seconds) for t, b in sorted(self.seen_bucket.items())
        }

    @property
    def known(self) -> bool:
        return (
            bool(self.card.components)
            or bool(self.attrs)
            or self.published is not None
            or self.overrides is not None
        )

    def as_dict(self) -> dict[str, Any]:
        score = self.card.score
        published = self.published
        return {
            "account_id": self.account_id,
            "at": rfc3339(self.at),
            "model_version": self.model.version,
            "model": {"version": self.model.version, "segment": model_name(self.model)},
            "segment": self.attrs.get("segment"),
            "attributes": self.attrs,
            "score": None if score is None else rounded(score),
            # The tier a live rescore now would publish: from the published tier with
            # hysteresis, or the plain one after a catch-up.
            "tier": self.tier_now(),
            "published_tier": published.tier if published else None,
            "published_seq": published.seq if published else None,
            "components": [self._component(c.name) for c in self.model.components],
            "last_events": self.last_events(),
            **shown(self.overrides, self.at),
            "recovery": None if self.outlook is None else self.outlook.as_dict(self.model),
        }

    def tier_now(self) -> str | None:
        score, published = self.card.score, self.published
        if score is None:
            return None
        return self._tier(score) or (published.tier if published else None)

    def _tier(self, score: float) -> str | None:
        hysteresis = hysteresis_applies(Mode.LIVE, self.last_mode)
        active = self._active()
        if active is None and (self.published is None or self.published.ovr is None):
            return new_tier(
                self.model,
                score,
                self.published,
                hysteresis=hysteresis,
                covered=enough_data(self.model, self.card.components),
            )
        change = override.decide(
            self.model, self.card, self.published, active, hysteresis=hysteresis
        )
        return None if change is None else change.tier

    def _active(self) -> override.ActiveOverride | None:
        active = None if self.overrides is None else self.overrides.active
        return active if active is not None and active.live_at(self.at) else None

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
            "capped": self.capped.get(name, []),
            # A trend's value in words; other components' output stays as it was.
            **(
                {}
                if component.trend is None
                else {
                    "trend": self._trend_words(
                        component, None if present is None else present.value
                    )
                }
            ),
            **self._peers(name),
        }

    def _trend_words(self, component: Component, value: float | None) -> str:
        seconds = component.window_buckets * self.model.bucket_seconds
        if value is None:
            return f"no previous {duration_words(seconds)} to compare with"
        return describe(value, seconds)

    def _peers(self, name: str) -> dict[str, Any]:
        """A percentile component's rank: its value is the percentile, this says among
        whom and from which raw value. No key for other components."""
        if name not in self.peers:
            return {}
        raw, rank = self.peers[name]
        group = peer_group(self.attrs)
        return {
            "peers": {
                "segment": group or None,
                "value": raw,
                "percentile": rounded(rank.percentile),
                "accounts": rank.peers,
            }
        }


async def explain(
    store: WindowStore, models: Model | ModelSet, account_id: str, clock: Clock
) -> Explanation:
    """Recompute every component from the windows as they are now (writes nothing), by
    the model of the account's segment (``store`` holds the set's ``windows``)."""
    now = clock.now()
    state = await store.read(account_id, now)
    model = as_model_set(models).for_account(state.attrs, now)  # onboarding or segment
    raw = component_values(
        model, state.windows, state.attrs, state.seen, {}, None, state.seen_bucket, state.now_bucket
    )
    names = percentile_components(model)
    ranks = await store.peers.read(account_id, peer_group(state.attrs), raw, names) if names else {}
    values = with_ranks(names, raw, ranks)
    capped = {
        c.name: sorted(c.signal.distinct & state.windows[c.window_buckets].capped)
        for c in model.components
    }
    active = None if state.override is None else state.override.active
    card = override.adjusted(
        score_components(model, values),
        active if active is not None and active.live_at(now) else None,
    )
    explanation = Explanation(
        account_id,
        now,
        model,
        card,
        state.attrs,
        state.published,
        state.last_mode,
        {name: sets for name, sets in capped.items() if sets},
        dict(state.seen_bucket or {}),
        state.override,
        peers={n: (raw[n], rank) for n, rank in ranks.items()},
    )
    tier, active = explanation.tier_now(), explanation._active()
    if tier is None or (active is not None and active.kind == "pin"):
        return explanation  # a pinned tier follows the pin, not the score
    fixed = () if active is None or active.component is None else (active.component,)
    hints = recovery(model, card, tier, fixed=fixed)
    if hints is None:
        return explanation
    return replace(
        explanation,
        outlook=await outlook(
            store,
            model,
            account_id,
            now,
            hints,
            active,
            {n: values[n] for n in names if n in values},
        ),
    )
