"""Peer-relative components: the percentile curve in a model file, ranks and what
scoring takes of them, the refresh schedule, and the peer sets' commands (no Redis)."""

from __future__ import annotations

import math
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.commands import ordinal, peer_line
from worker.errors import ConfigError
from worker.modelfile import load_model, parse_model
from worker.notify.format import trigger_words
from worker.peerrank import PeerRanking
from worker.scoring.curves import Percentile
from worker.scoring.mode import Mode
from worker.scoring.peers import (
    NO_SEGMENT,
    PeerRank,
    peer_group,
    percentile_components,
    refresh_at,
    with_ranks,
)
from worker.scoring.recovery import invertible, recovery
from worker.scoring.rollup import score_components
from worker.scoring.segments import ModelSet, as_model_set
from worker.windows import keys
from worker.windows.peers import PeerUpdate, _as_if_in, exchange, ranks
from worker.windows.state import AccountState

HEAD = """
version: t1
bucket: 1d
tiers:
  margin: 3
  levels:
    - {name: green, label: G, min_score: 70}
    - {name: red, label: R, min_score: 0}
components:
  usage:
    signal: logins_per_active_user
    window: 30d
    weight: 1
    curve: {percentile: %s}
  tickets:
    signal: tickets_opened
    window: 30d
    weight: 1
    curve: {linear: {bad: 8, good: 1}}
"""


def _model(curve: str = "{better: higher}") -> object:
    return parse_model(HEAD % curve)


# ------------------------------------------------------------------- the model file


def test_a_percentile_curve_loads_with_its_direction() -> None:
    model = parse_model(HEAD % "{better: lower}")
    assert model.component("usage").curve == Percentile("lower")
    assert percentile_components(model) == ("usage",)


def test_better_defaults_to_higher() -> None:
    assert parse_model(HEAD % "{}").component("usage").curve == Percentile("higher")


@pytest.mark.parametrize("curve", ["{better: middle}", "{better: higher, by: 2}"])
def test_a_bad_percentile_curve_names_the_field(curve: str) -> None:
    with pytest.raises(ConfigError, match=r"components\.usage\.curve"):
        parse_model(HEAD % curve)


def test_the_example_model_ranks_two_components_and_the_default_none() -> None:
    path = resources.files("worker").joinpath("models", "peers.example.yaml")
    example = load_model(str(path))
    assert percentile_components(example) == ("login_frequency", "support_tickets")
    assert example.component("support_tickets").curve == Percentile("lower")
    assert percentile_components(load_model()) == ()


# ------------------------------------------------------------------------ ranks


@pytest.mark.parametrize(
    ("rank", "expected"),
    [
        (PeerRank(0, 1, 1), 50.0),  # alone in its group: the middle
        (PeerRank(0, 1, 10), 5.0),  # the lowest of ten
        (PeerRank(9, 1, 10), 95.0),  # the highest of ten
        (PeerRank(1, 1, 10), 15.0),  # "a mark of 10 means the bottom 10%": near it
        (PeerRank(0, 4, 4), 50.0),  # all equal
        (PeerRank(2, 2, 8), 37.5),  # ties count half
    ],
)
def test_the_percentile_is_below_plus_half_the_ties(rank: PeerRank, expected: float) -> None:
    assert rank.percentile == expected


@given(st.integers(0, 10**9), st.integers(1, 10**9), st.integers(0, 10**9))
def test_a_percentile_is_always_within_0_and_100(below: int, equal: int, above: int) -> None:
    assert 0.0 < PeerRank(below, equal, below + equal + above).percentile < 100.0


@given(st.integers(-5, 5), st.integers(-5, 5), st.integers(-5, 0))
def test_counts_no_set_can_give_still_score_in_range(below: int, equal: int, peers: int) -> None:
    assert PeerRank(below, equal, peers).percentile == 50.0


def test_lower_is_better_mirrors_the_percentile() -> None:
    assert Percentile("higher")(15.0) == 15.0
    assert Percentile("lower")(15.0) == 85.0


def test_scoring_takes_the_rank_and_the_raw_values_stay() -> None:
    model = parse_model(HEAD % "{better: higher}")
    values = {"usage": 12.0, "tickets": 1.0}
    scored = with_ranks(percentile_components(model), values, {"usage": PeerRank(1, 1, 10)})
    assert scored == {"usage": 15.0, "tickets": 1.0}
    assert values == {"usage": 12.0, "tickets": 1.0}
    card = score_components(model, scored)
    assert card.components["usage"].subscore == 15.0
    assert card.score == pytest.approx((15.0 + 100.0) / 2)


def test_a_value_without_a_rank_is_left_out_rather_than_guessed() -> None:
    assert with_ranks(("usage",), {"usage": 12.0, "tickets": 1.0}, {}) == {"tickets": 1.0}


def test_percentile_components_get_no_recovery_hints() -> None:
    assert not invertible(Percentile("higher"))


@pytest.mark.parametrize(
    ("attrs", "group"),
    [({"segment": "smb"}, "smb"), ({}, NO_SEGMENT), ({"segment": 3}, NO_SEGMENT)],
)
def test_the_peer_group_is_the_segment(attrs: dict[str, object], group: str) -> None:
    assert peer_group(attrs) == group


@given(st.text(min_size=1, max_size=20), st.floats(0, 4e9), st.floats(1, 86400 * 7))
def test_a_silent_account_is_read_again_within_the_refresh(
    account: str, now: float, every: float
) -> None:
    due = refresh_at(account, now, every)
    assert now < due <= now + every * (1 + 1e-9) + 1e-6
    # Stable within its period: a rescore a little later is due at the same moment.
    later = now + (due - now) / 2
    assert refresh_at(account, later, every) == pytest.approx(due)


def test_accounts_are_spread_over_the_refresh_period() -> None:
    due = {refresh_at(f"acct-{i}", 0.0, 3600.0) for i in range(100)}
    assert len(due) > 90


# ------------------------------------------------------------------ the peer sets


def _update(before: str | None = "smb", values: dict[str, float] | None = None) -> PeerUpdate:
    return PeerUpdate(
        "acme", "smb", before, {"usage": 12.5} if values is None else values, ("usage",), ("other",)
    )


def test_a_value_is_added_then_counted_in_its_groups_set() -> None:
    found = exchange([_update()])
    key = keys.peers_key("usage", "smb")
    assert key == "hs:peers:{usage:smb}"
    assert found.commands == [
        ("ZADD", key, "12.5", "acme"),
        ("ZCOUNT", key, "-inf", "(12.5"),
        ("ZCOUNT", key, "12.5", "12.5"),
        ("ZCARD", key),
        ("ZREM", keys.peers_key("other", "smb"), "acme"),
    ]
    assert ranks(found.reads, [1, 3, 2, 10, 0]) == [{"usage": PeerRank(3, 2, 10)}]


def test_a_component_without_data_leaves_its_set() -> None:
    found = exchange([_update(values={})])
    assert found.commands[0] == ("ZREM", keys.peers_key("usage", "smb"), "acme")
    assert found.reads == [[]]


def test_a_move_to_another_segment_leaves_the_old_sets_and_says_so_last() -> None:
    found = exchange([PeerUpdate("acme", "enterprise", "smb", {"usage": 3.0}, ("usage",), ())])
    assert found.commands[0] == ("ZREM", keys.peers_key("usage", "smb"), "acme")
    assert found.commands[1][:2] == ("ZADD", keys.peers_key("usage", "enterprise"))
    assert found.commands[-1] == ("HSET", keys.state_key("acme"), keys.PEERS, "enterprise")


def test_a_first_ranking_records_its_group() -> None:
    found = exchange([_update(before=None)])
    assert found.commands[-1] == ("HSET", keys.state_key("acme"), keys.PEERS, "smb")
    assert not any(c[0] == "ZREM" and "usage" in str(c[1]) for c in found.commands)


def test_replies_of_several_accounts_are_split_by_account() -> None:
    found = exchange([_update(), _update(values={}), _update()])
    replies: list[object] = []
    for command in found.commands:
        replies.append({"ZADD": 0, "ZCOUNT": 1, "ZCARD": 5}.get(str(command[0]), 0))
    got = ranks(found.reads, replies)
    assert got == [{"usage": PeerRank(1, 1, 5)}, {}, {"usage": PeerRank(1, 1, 5)}]


def test_a_nan_value_is_not_ranked() -> None:
    found = exchange([_update(values={"usage": float("nan")})])
    assert found.reads == [[]]


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        (None, PeerRank(2, 2, 6)),  # not in the set yet: counted in
        (b"5", PeerRank(2, 1, 5)),  # in it with this value: as read
        (b"1", PeerRank(1, 2, 5)),  # in it below: moved up to its value
        (b"9", PeerRank(2, 2, 5)),  # in it above: moved down
    ],
)
def test_explain_counts_the_account_at_its_present_value(
    own: bytes | None, expected: PeerRank
) -> None:
    assert _as_if_in(5.0, 2, 1, 5, own) == expected


def test_hints_leave_out_the_percentile_component_and_use_the_others() -> None:
    model = parse_model(HEAD % "{better: higher}")
    # 50 and 57.1: red; either could lift it to 73 alone, were the rank in the account's hands
    card = score_components(model, {"usage": 50.0, "tickets": 4.0})
    found = recovery(model, card, "red")
    assert found is not None
    assert [h.component for h in found.hints] == ["tickets"]


# ------------------------------------------------------------ what a batch sends


def _state(peer_group: str | None, segment: str | None = "smb") -> AccountState:
    return AccountState(
        "acme",
        0,
        True,
        "",
        0,
        0,
        0,
        None,
        {},
        {} if segment is None else {"segment": segment},
        {},
        None,
        frozenset(),
        Mode.LIVE,
        peer_group=peer_group,
    )


def test_a_model_without_percentile_components_gets_no_ranking() -> None:
    assert PeerRanking.of(as_model_set(load_model()), 3600.0) is None


def test_an_account_ranked_by_its_model_sends_its_values_to_its_segment() -> None:
    model = parse_model(HEAD % "{better: higher}")
    ranking = PeerRanking.of(as_model_set(model), 3600.0)
    assert ranking is not None
    update = ranking.update(model, _state(None, segment=None), {"usage": 2.0})
    assert update == PeerUpdate("acme", NO_SEGMENT, None, {"usage": 2.0}, ("usage",), ())


def test_an_account_whose_model_ranks_nothing_is_left_alone_unless_it_was_ranked() -> None:
    ranked = parse_model(HEAD % "{better: higher}")
    plain = load_model()
    ranking = PeerRanking.of(ModelSet(ranked, {"smb": replace(plain, segment="smb")}), 3600.0)
    assert ranking is not None
    smb = ranking._ranked  # the default ranks usage, smb nothing
    assert smb == {None: ("usage",), "smb": ()}
    assert ranking.update(replace(plain, segment="smb"), _state(None), {}) is None
    left = ranking.update(replace(plain, segment="smb"), _state("enterprise"), {})
    assert left is not None
    assert exchange([left]).commands[0] == ("ZREM", keys.peers_key("usage", "enterprise"), "acme")


def test_a_ranked_account_is_due_by_its_refresh_at_the_latest() -> None:
    model = parse_model(HEAD % "{better: higher}")
    ranking = PeerRanking.of(as_model_set(model), 3600.0)
    assert ranking is not None
    rank = {"usage": PeerRank(0, 1, 1)}
    due = ranking.next_change("acme", 1000.0, 9e9, rank)
    assert due is not None
    assert 1000.0 < due <= 4600.0
    assert ranking.next_change("acme", 1000.0, 1001.0, rank) == 1001.0
    assert ranking.next_change("acme", 1000.0, 9e9, {}) == 9e9
    # Nothing left in its windows: not rescored until its next record, peers or not.
    assert ranking.next_change("acme", 1000.0, None, rank) is None


def test_an_account_in_no_set_with_nothing_to_rank_sends_nothing() -> None:
    found = exchange([_update(before=None, values={})])
    assert found == ([], [], [[]], [None])


def test_an_account_whose_last_value_went_leaves_its_sets_and_its_field() -> None:
    found = exchange([_update(values={})])
    assert found.commands == [
        ("ZREM", keys.peers_key("usage", "smb"), "acme"),
        ("ZREM", keys.peers_key("other", "smb"), "acme"),
        ("HDEL", keys.state_key("acme"), keys.PEERS),
    ]
    assert found.groups == [None]


@pytest.mark.parametrize(
    ("n", "word"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (11, "11th"), (62, "62nd"), (100, "100th")]
)
def test_ordinals(n: int, word: str) -> None:
    assert ordinal(n) == word


def test_explain_says_the_rank_in_words() -> None:
    peers = {"segment": "mid_market", "value": 12.5, "percentile": 61.8, "accounts": 340}
    assert peer_line(peers) == "62nd percentile of 340 mid_market accounts (value 12.5)"
    alone = {"segment": None, "value": 3.0, "percentile": 50.0, "accounts": 1}
    assert peer_line(alone) == "50th percentile of 1 accounts without a segment (value 3)"


_components = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_segments = st.text(min_size=0, max_size=12)


@given(_components, _segments, _components, _segments)
def test_no_two_pairs_share_a_set(c1: str, g1: str, c2: str, g2: str) -> None:
    if (c1, g1) != (c2, g2):
        assert keys.peers_key(c1, g1) != keys.peers_key(c2, g2)


@given(
    _segments,
    st.one_of(st.none(), _segments),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_segment_and_value_give_well_formed_commands(
    group: str, before: str | None, value: float
) -> None:
    found = exchange([PeerUpdate("acme", group, before, {"usage": value}, ("usage",), ())])
    for command in found.commands:
        assert all(isinstance(arg, str) for arg in command)
    if found.reads[0]:
        zadd = found.commands[found.reads[0][0][1] - 1]
        assert float(zadd[2]) == value  # the exact double, as Redis parses it
    else:
        assert math.isnan(value)  # only NaN has no place among the peers


def test_slack_says_a_percentile_trigger_moved_among_its_segment() -> None:
    trigger = {"name": "usage", "previous_value": 83.3, "value": 31.25}
    words = trigger_words(trigger, parse_model(HEAD % "{better: higher}"))
    assert words == "usage (percentile in its segment) fell from 83.3 to 31.2 in 30 days"
    tickets = {"name": "tickets", "previous_value": 1.0, "value": 3.0}
    assert trigger_words(tickets, parse_model(HEAD % "{}")) == "tickets rose from 1 to 3 in 30 days"


def test_the_bench_model_is_the_default_with_one_percentile_component() -> None:
    bench = load_model(str(Path(__file__).parents[2] / "bench" / "percentile.yaml"))
    default = load_model()
    assert percentile_components(bench) == ("login_frequency",)
    # Alike but for the curve (a percentile there): compared with the default's curve.
    assert [
        replace(b, curve=d.curve, description="")
        for b, d in zip(bench.components, default.components, strict=True)
    ] == [replace(d, description="") for d in default.components]
    assert bench.tiers == default.tiers
