"""The API's response bodies. Each field's description goes into the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Component(BaseModel):
    name: str = Field(description="Component name, as in the model.")
    description: str = Field(description="What the component measures.")
    value: float | None = Field(
        description="Raw value computed from the component's window now; null: no data."
    )
    subscore: float | None = Field(
        description="The value through the component's curve, 0-100; null: no data."
    )
    weight: float = Field(description="The component's weight in the model.")
    contribution: float | None = Field(
        description="Points of the score this component accounts for; null: no data"
        " (left out, the other weights renormalised)."
    )
    capped: list[str] = Field(
        description="Distinct sets (users, features) whose count in this window is a lower"
        " bound: the account reached HEALTHSCORE_MAX_DISTINCT_MEMBERS."
    )
    trend: str | None = Field(
        default=None,
        description='A trend component\'s value in words ("-35% vs the previous 7 days");'
        " null for any other component.",
    )
    peers: PeerRank | None = Field(
        default=None,
        description="A percentile component (curve percentile): its rank among"
        " its segment's accounts; absent for other components.",
    )


class PeerRank(BaseModel):
    segment: str | None = Field(
        description="The peer group: the account's segment; null: the accounts without one."
    )
    value: float = Field(description="The component's raw value, ranked among the group's.")
    percentile: float = Field(
        description="Its percentile rank there, 0-100 (peers below,"
        " ties counting half): the component's value."
    )
    accounts: int = Field(description="Accounts in the group with a value, this one among them.")


class LastAlert(BaseModel):
    seq: int = Field(description="The alert's seq: the account's count of alerts.")
    tier: str = Field(description="The tier the alert published.")
    score: float = Field(description="The score the alert published.")


class AccountOverride(BaseModel):
    override_id: str = Field(
        description="The override's id (an override sent again with it edits it)."
    )
    kind: str = Field(
        description="pin: the tier is pinned; adjust: one component's sub-score is replaced."
    )
    tier: str | None = Field(description="pin: the pinned tier.")
    component: str | None = Field(description="adjust: the component adjusted.")
    subscore: float | None = Field(description="adjust: the sub-score it is given.")
    reason: str = Field(description="Why, as its author wrote it.")
    author: str = Field(description="Who set it.")
    set_at: str = Field(description="When it was set (RFC 3339).")
    expires_at: str = Field(description="When it expires (RFC 3339).")
    ended: str | None = Field(
        default=None, description="Past overrides: how it ended (expired, replaced, cleared)."
    )
    ended_at: str | None = Field(default=None, description="Past overrides: when (RFC 3339).")


class RecoveryChange(BaseModel):
    component: str = Field(description="The component to change.")
    description: str = Field(description="What the component measures.")
    signal: str = Field(
        description="The signal its value comes from (e.g. active_user_share:"
        " distinct active users / seats purchased)."
    )
    value: float | None = Field(description="Its value now; null: no data in its window.")
    op: str = Field(
        description='">=" (at least), "<=" (at most) or ">" (above): the'
        " value must be `op` `target`."
    )
    target: float = Field(description="The value that does it, in the component's own unit.")
    subscore: float | None = Field(description="Its sub-score now; null: no data.")
    target_subscore: float = Field(description="The sub-score the target gives.")
    by_itself_at: str | None = Field(
        description="When its value gets there with no new event, as older events leave"
        " its window (RFC 3339); null: not by itself."
    )


class Recovery(BaseModel):
    tier: str = Field(description="The tier above the account's.")
    score: float = Field(
        description="The score that reaches it: its boundary plus the model's margin."
    )
    alone: bool = Field(
        description="true: each change on its own gets there (the easiest"
        " first); false: none can alone, all of them together do."
    )
    by_itself_at: str | None = Field(
        description="When the account gets there with no new event (RFC 3339); null: not by itself."
    )
    changes: list[RecoveryChange] = Field(description="The changes, in the component's terms.")


class Account(BaseModel):
    account_id: str = Field(description="The account.")
    at: str = Field(description="When the score was computed (RFC 3339): the windows end here.")
    model_version: str = Field(description="Version of the model that computed it.")
    segment_model: str = Field(
        description="The segment model that computed it: the account's segment's, or"
        ' "default" (no model for its segment, or no segment).'
    )
    segment: str | None = Field(description="The account's segment attribute, if any.")
    attributes: dict[str, Any] = Field(
        description="The account's attributes from the accounts topic."
    )
    score: float | None = Field(
        description="Score 0-100 from the windows as they are now; null: no data in any window."
    )
    tier: str | None = Field(
        description="The tier a rescore now would publish (hysteresis from the published"
        " tier); null: no score."
    )
    published_tier: str | None = Field(
        description="The last tier published to the alerts topic (what GET /accounts"
        " lists by); null: none yet."
    )
    last_alert: LastAlert | None = Field(
        description="The last alert published for the account; null: none yet."
    )
    components: list[Component] = Field(description="Every component of the model.")
    last_events: dict[str, str | None] = Field(
        description="Event type -> start (RFC 3339) of the newest time bucket (the model's"
        " bucket, 1 day by default) holding an event of that type; null: seen"
        " before this was recorded. Types never seen are left out."
    )
    override: AccountOverride | None = Field(
        default=None,
        description="The override in force (a pinned tier or an adjusted component); null: none.",
    )
    override_history: list[AccountOverride] = Field(
        default_factory=list, description="Past overrides, newest first, with how they ended."
    )
    recovery: Recovery | None = Field(
        default=None,
        description="What would bring the account up a tier: per component the"
        " smallest change that would, and when it gets there by"
        " itself; null: in the best tier, pinned, or no score.",
    )


class AccountSummary(BaseModel):
    account_id: str = Field(description="The account.")
    tier: str = Field(description="Its last published tier.")
    score: float = Field(description="The score published with that tier.")
    seq: int = Field(description="The seq of the alert that published it.")
    segment: str | None = Field(description="The account's segment attribute, if any.")


class AccountPage(BaseModel):
    accounts: list[AccountSummary] = Field(
        description="Accounts in this page, by account id. With a segment filter a page"
        " may hold fewer than the limit, or none, and still have a next cursor."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null: this was the last page."
    )


class Tier(BaseModel):
    name: str = Field(description="Tier name, as alerts carry it.")
    label: str = Field(description="Human label.")
    min_score: float = Field(description="Lowest score of the tier, before hysteresis.")


class ModelComponent(BaseModel):
    name: str = Field(description="Component name.")
    description: str = Field(description="What it measures.")
    signal: str = Field(description="How its raw value is computed from the window.")
    window_seconds: int = Field(description="Length of its window.")
    weight: float = Field(description="Its weight.")
    trend: str | None = Field(
        default=None,
        description="previous: its value is the signal's change in percent from the window"
        " of the same length before; null: the signal's value itself.",
    )


class ScoringModel(BaseModel):
    version: str = Field(description="The model's version, as alerts carry it.")
    bucket_seconds: int = Field(description="Length of one time bucket of the windows.")
    margin: float = Field(description="Hysteresis margin, in points.")
    tiers: list[Tier] = Field(description="Tiers, best first.")
    components: list[ModelComponent] = Field(description="The components.")
    segment: str = Field(
        default="default", description='Which segment\'s accounts it scores; "default": the rest.'
    )
    segments: list[ScoringModel] = Field(
        default_factory=list,
        description="The segment models (of the default model only): each complete, as it"
        " scores the accounts of its segment.",
    )


class Error(BaseModel):
    detail: str = Field(description="What went wrong.")
