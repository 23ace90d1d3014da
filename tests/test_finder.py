"""analysis.finder: bad nodes among 1,024 and 16,384 found in a few rounds, with a stand-in for
the measurement that injects slow nodes, slow links, noise and transient spikes
(tests/fakes.FaultyFleet). Counts of rounds and nodes, never times."""
import pytest

from analysis.finder import Finder, find, rounds_bound
from tests.fakes import FaultyFleet


@pytest.mark.parametrize("n", [1024, 16384])
@pytest.mark.slow
def test_one_bad_node_in_three_rounds(n):
    fleet = FaultyFleet(n, bad_nodes=[n // 3])
    out = find(fleet.nodes, fleet, group_size=2, confirm=2, seed=1)
    assert out.drain == fleet.bad() and out.warn == [] and out.unresolved == []
    assert out.rounds == rounds_bound(2, 2) == 3 < n - 1  # all pairs: n - 1 rounds
    assert fleet.calls == out.rounds


@pytest.mark.parametrize("n, seeds", [(1024, range(6)), (16384, range(2))])
@pytest.mark.slow
def test_several_faults_with_noise_and_spikes_no_false_positives(n, seeds):
    for seed in seeds:
        bad = [5, 77, n // 2, n // 2 + 1, n - 1]  # two neighbours: maybe screened together
        fleet = FaultyFleet(n, bad_nodes=bad, slowdown=2.0, bad_links=[(10, 11)], noise=0.05,
                            spike_p=0.01, seed=seed)
        out = find(fleet.nodes, fleet, group_size=2, confirm=2, seed=seed)
        assert out.drain == fleet.bad(), (seed, out.drain)   # every one, and nothing else
        assert out.unresolved == []
        assert out.rounds <= rounds_bound(2, 2) + 2, out.rounds  # spikes may cost a retest


@pytest.mark.parametrize("k", [4, 8])
def test_k_batch_groups_then_bisection(k):
    fleet = FaultyFleet(1024, bad_nodes=[100])
    out = find(fleet.nodes, fleet, group_size=k, confirm=2, seed=3)
    assert out.drain == fleet.bad()
    assert out.rounds == rounds_bound(k, 2) == 1 + {4: 2, 8: 3}[k] + 1


def test_a_slow_link_is_a_slow_pair_not_a_node():
    fleet = FaultyFleet(64, bad_links=[(0, 1)])
    # screen with the two ends together: the pair is slow, each end fine with other partners
    finder = Finder(fleet.nodes, group_size=2, seed=0)
    groups = finder.plan()
    a, b = fleet.nodes[0], fleet.nodes[1]
    fleet.links = {frozenset(g) for g in groups if a in g or b in g}  # both ends' screen pairs
    finder.record(groups, fleet(groups))
    while (groups := finder.plan()) is not None:
        finder.record(groups, fleet(groups))
    assert finder.outcome.drain == []
    assert {frozenset(c) for c in finder.outcome.combos} == fleet.links


def test_leftover_nodes_are_probed_too():
    fleet = FaultyFleet(101, bad_nodes=[100])  # 101 nodes: one left out of the pairs
    for seed in range(5):
        out = find(fleet.nodes, fleet, group_size=2, seed=seed)
        assert out.drain == fleet.bad(), seed


def test_misuse():
    with pytest.raises(ValueError, match="at least 6"):
        Finder([f"n{i}" for i in range(5)], group_size=2)
    finder = Finder([f"n{i}" for i in range(8)])
    groups = finder.plan()
    with pytest.raises(ValueError, match="groups of the last plan"):
        finder.record(groups[::-1], [1.0] * len(groups))
