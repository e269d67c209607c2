"""How a cluster exchange routes and orders commands (``worker.windows.cluster``),
without a cluster: slots from keys, and the waves that keep a run's order."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot

from worker.windows import cluster, keys
from worker.windows.cluster import _Routed, _waves

NODES = [ClusterNode("127.0.0.1", 7000 + n) for n in range(3)]


def test_a_commands_slot_is_its_keys_and_a_scripts_its_first_keys() -> None:
    state = keys.state_key("acme")
    assert cluster.slot_of(("HSET", state, "f", 1)) == key_slot(state.encode())
    assert cluster.slot_of(("EVALSHA", "abc", 3, state, "k2", "k3", 1)) == key_slot(state.encode())
    assert cluster.slot_of(("EVALSHA", "abc", 0, 1)) is None
    assert cluster.slot_of(("INFO",)) is None


def test_every_key_of_an_account_is_in_one_slot() -> None:
    slots = {key_slot(k.encode()) for k in keys.account_keys("acme", ("users", "x:y"))}
    assert len(slots) == 1


def _routed(nodes: list[int]) -> list[_Routed]:
    return [_Routed(at, ("SET", f"k{at}", 1), NODES[n]) for at, n in enumerate(nodes)]


def test_without_runs_everything_goes_at_once() -> None:
    routed = _routed([0, 1, 2, 0])
    assert _waves(routed, 4, ()) == [routed]


def test_a_run_goes_one_wave_further_where_its_node_changes() -> None:
    # Two accounts: pending index (node 0), state hash (node 1), tier index (node 1),
    # schedule (node 0); the other only its state (node 2) and schedule (node 0).
    routed = _routed([0, 1, 1, 0, 2, 0])
    waves = _waves(routed, 6, (0, 4))
    assert [[r.at for r in wave] for wave in waves] == [[0, 4], [1, 2, 5], [3]]


@given(
    st.lists(st.integers(0, 2), min_size=1, max_size=30), st.sets(st.integers(0, 29), max_size=6)
)
def test_waves_keep_each_runs_order_across_nodes(nodes: list[int], cuts: set[int]) -> None:
    routed = _routed(nodes)
    starts = sorted({0} | {c for c in cuts if c < len(nodes)})
    waves = _waves(routed, len(nodes), starts)
    wave_of = {r.at: w for w, wave in enumerate(waves) for r in wave}
    assert sorted(wave_of) == list(range(len(nodes)))  # each command once
    bounds = [*starts, len(nodes)]
    for start, end in itertools.pairwise(bounds):
        for at in range(start + 1, end):
            before, now = routed[at - 1], routed[at]
            if before.node is now.node:  # one connection keeps their order
                assert wave_of[at] >= wave_of[at - 1]
            else:  # another node: only a later wave comes after
                assert wave_of[at] > wave_of[at - 1]


def test_commands_of_one_node_in_a_wave_stay_in_the_callers_order() -> None:
    routed = _routed([1, 0, 1, 1])
    [wave] = _waves(routed, 4, ())
    assert [r.at for r in wave if r.node is NODES[1]] == [0, 2, 3]
