"""Node awareness without a cluster: pairing schedule, host map and splits, the link map's
outlier rule, rank skew, and the pairs op and --split on local ranks."""
import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.links import describe, flag_links, last_ranks, link_times, node_times, outliers, skewed
from analysis.runsamples import load_run, load_samples
from bench import nodes
from bench.core.errors import UsageError
from bench.core.rundir import SAMPLE_COLUMNS
from bench.ops import OPS
from bench.ops.pairs import pairing_rounds
from tests.conftest import QUICK, needs_mpi, run_commbench


@pytest.mark.parametrize("n", range(2, 13))
def test_pairing_rounds_meet_every_pair_once_and_never_share_a_rank(n):
    rounds = pairing_rounds(n)
    assert len(rounds) == (n - 1 if n % 2 == 0 else n)
    met = []
    for peers in rounds:
        for rank, peer in enumerate(peers):
            if peer >= 0:
                assert peers[peer] == rank  # a pair is mutual, so no rank is in two pairs
                met.append((min(rank, peer), max(rank, peer)))
        assert sum(p < 0 for p in peers) == n % 2  # odd n: exactly one rank sits out
    assert sorted(set(met)) == list(itertools.combinations(range(n), 2))
    assert len(met) == 2 * len(set(met))


def test_pairs_op_cases_and_peers():
    op = OPS["pairs"]
    cases = op.cases(1024, 4, 4)
    assert [c.pairing for c in cases] == [0, 1, 2] and {c.nbytes for c in cases} == {1024}
    for case in cases:
        for rank in range(4):
            peer = op.peer_of(case, rank)
            assert op.active_in(case, rank) and op.peer_of(case, peer) == rank
            assert (op.expected(case, rank) == op.expected(case, peer)).all()
    assert OPS["pingpong"].peer_of(OPS["pingpong"].case(8, 4, 4), 1) == -1  # idle rank


HOSTS = ["a", "a", "b", "b", "c", "c"]


def test_host_map_and_split_communicators():
    assert nodes.node_index(HOSTS) == [0, 0, 1, 1, 2, 2]
    assert nodes.local_index(HOSTS) == [0, 1, 0, 1, 0, 1]
    assert nodes.split_size("all", HOSTS) == 6
    assert nodes.split_size("intra", HOSTS) == 2 and nodes.split_size("inter", HOSTS) == 3
    assert nodes.members("intra", 3, HOSTS) == [2, 3]
    assert nodes.members("inter", 3, HOSTS) == [1, 3, 5]
    with pytest.raises(UsageError, match="same number of ranks on every node"):
        nodes.split_size("intra", ["a", "a", "b"])
    with pytest.raises(UsageError, match="known are"):
        nodes.parse_splits("all,diagonal")
    assert nodes.parse_splits("intra, inter,intra") == ("intra", "inter")


def test_outlier_rule_is_robust_and_has_a_floor():
    mask, med, _ = outliers([1.0, 1.01, 0.99, 1.0, 1.5])
    assert mask.tolist() == [False, False, False, False, True] and med == 1.0
    assert not outliers([1.0, 1.0, 1.0, 1.05])[0].any()  # MAD 0: the 10% floor decides
    assert not outliers([1.0, 2.0])[0].any()             # too few to call anything an outlier


def _pair_samples(hosts, link_time, nbytes=1 << 20, samples=5, seed=1):
    """Synthetic pairs rows: every rank of every pairing round, time = link_time(a, b) + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    n = len(hosts)
    for peers in pairing_rounds(n):
        for rank, peer in enumerate(peers):
            if peer < 0:
                continue
            for s in range(samples):
                t = link_time(min(rank, peer), max(rank, peer)) * float(np.exp(rng.normal(0, 0.01)))
                rows.append(("mpi", "pairs", "float32", nbytes, n, "all", 0, s, rank, 1, t, peer))
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS + ["peer"])


def test_slow_node_and_slow_link_are_flagged():
    hosts = [f"n{i}" for i in range(6)]
    # n4's links at 1.5x; link 0-1 alone at 2x
    time = lambda a, b: 1e-3 * (2.0 if (a, b) == (0, 1) else 1.5 if 4 in (a, b) else 1.0)  # noqa: E731
    links = flag_links(link_times(_pair_samples(hosts, time), hosts))
    assert len(links) == 15 and set(links["kind"]) == {"inter"}
    slow = links[links["outlier"]]
    assert {(r.a, r.b) for r in slow.itertuples()} >= {(0, 1)}
    found = node_times(links)
    assert set(found.loc[found["outlier"], "node"]) == {"n4"}
    text = describe(_pair_samples(hosts, time), {"hosts": hosts, "nnodes": 6})
    assert "slow node n4" in text and "slow link 0-1" in text
    assert "slow: mpi S=1048576 B: nodes n4; links 0-1" in text
    assert "3.5 x 1.4826 x MAD" in text  # the rule is stated


def test_intra_and_inter_node_links_are_judged_apart():
    hosts = ["a", "a", "b", "b"]
    time = lambda a, b: 1e-5 if hosts[a] == hosts[b] else 1e-3  # noqa: E731
    links = flag_links(link_times(_pair_samples(hosts, time), hosts))
    assert sorted(links["kind"]) == ["inter"] * 4 + ["intra"] * 2
    assert not links["outlier"].any()


def test_the_rank_that_arrives_last():
    rows = []
    for s in range(40):
        for rank in range(4):
            t = 1e-4 * (1.3 if rank == 2 and s % 4 else 1.0) * (1 + 0.01 * rank)
            rows.append(("mpi", "allreduce", "float32", 64, 4, "all", 0, s, rank, 5, t, -1))
    samples = pd.DataFrame(rows, columns=SAMPLE_COLUMNS + ["peer"])
    last = last_ranks(samples, ["h0", "h0", "h1", "h1"])
    row = last.iloc[0]
    assert row["last_rank"] == 2 and row["host"] == "h1" and row["share"] == 0.75
    assert len(skewed(last)) == 1
    assert "rank 2 (h1) last in 75% of 40 samples" in describe(samples, {"hosts": ["h0", "h0", "h1", "h1"]})


def test_old_samples_without_peer_load_with_minus_one(tmp_path):
    (tmp_path / "samples.csv").write_text(",".join(SAMPLE_COLUMNS) + "\n"
                                          "mpi,allreduce,float32,8,2,all,0,0,0,1,1e-6\n")
    assert load_samples(tmp_path)["peer"].tolist() == [-1]


@needs_mpi
def test_pairs_and_splits_on_local_ranks(tmp_path):
    out = tmp_path / "run"
    r = run_commbench("run", "-n", "4", "--ops", "pairs,allreduce", "--sizes", "8,4K", "--split",
                      "all,inter", "--repeats", "1", "--out", out, *QUICK, timeout=240)
    assert r.returncode == 0, r.stderr
    meta, samples, summary = load_run(out)
    assert meta["status"] == "complete" and (summary.wrong == 0).all()
    # one node: inter-node communicators hold one rank each, where pairs cannot run
    assert {(row.op, row.split, row.nranks) for row in summary.itertuples()} == {
        ("pairs", "all", 4), ("allreduce", "all", 4), ("allreduce", "inter", 1)}
    pairs = samples[samples.op == "pairs"]
    assert set(zip(pairs["rank"], pairs["peer"])) == {(a, b) for a in range(4) for b in range(4) if a != b}
    assert (samples[samples.op == "allreduce"]["peer"] == -1).all()
    links = link_times(samples, meta["hosts"])
    assert len(links) == 2 * 6 and set(links["kind"]) == {"intra"}


@pytest.mark.slow
def test_heatmap_of_the_link_map(tmp_path):
    hosts = [f"n{i}" for i in range(4)]
    time = lambda a, b: 1e-3 * (1.5 if 2 in (a, b) else 1.0)  # noqa: E731
    links = flag_links(link_times(_pair_samples(hosts, time), hosts))
    from analysis.links import heatmap_figure, matrix

    m = matrix(links, 4)
    assert np.isnan(np.diag(m)).all() and np.allclose(m, m.T, equal_nan=True)
    fig = heatmap_figure(links, hosts)
    fig.savefig(tmp_path / "pairs.png")
    assert (tmp_path / "pairs.png").stat().st_size > 1000
