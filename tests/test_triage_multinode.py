"""commbench triage on an emulated cluster (tests/netns_cluster.py): six nodes, one rank each;
one node's egress shaped to a third of the others' rate is drained, and nothing else; unshaped,
nothing is drained in 3 runs of 3; the faster mode (--find) names the same node in fewer rounds
than all pairs. Needs root, ip, tc and unshare; runs last (conftest.py), like test_multinode."""
import re
import shlex
import sys

import pytest

from tests.conftest import commbench_env, mpiexec, run_commbench
from tests.netns_cluster import Cluster, cluster_test_marks, _sh

NODES = 6
RATE_BPS = 300e6
SLOW_NODE = "node2"
QUICK_RUN = ["--launches", "1", "--repeats", "1", "--no-noise", "--no-ceilings", "-q"]

pytestmark = cluster_test_marks()


@pytest.fixture(scope="module")
def cluster():
    with Cluster(NODES, default_rate_bps=RATE_BPS, rate_bps={SLOW_NODE: RATE_BPS / 3}) as c:
        yield c


def run(cluster, out, *args):
    command = [sys.executable, "-m", "bench.cli", "run", "--out", out, *QUICK_RUN, *args]
    r = cluster.mpirun(mpiexec(), command, env=commbench_env(), timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


def reshape(cluster, node, rate_bps):
    """A new rate for node's egress (htb cannot change its root in place: remove it first)."""
    _sh("ip", "netns", "exec", cluster.ns(node), "tc", "qdisc", "del", "dev", "eth0", "root")
    cluster.shape(node, rate_bps)


def fleet_runs(cluster, base):
    """A pairs run (every link, 1 MiB ping-pongs) and a collectives run (allreduce over all)."""
    run(cluster, base / "pairs", "--ops", "pairs", "--sizes", "1M", "--budget", "0.3",
        "--min-samples", "5")
    run(cluster, base / "coll", "--ops", "allreduce", "--sizes", "1M", "--budget", "0.5",
        "--min-samples", "10")
    return [base / "pairs", base / "coll"]


def drained_in(stdout: str) -> set:
    return set(re.findall(r"^  drain  (?:node|link) (\S+):", stdout, re.MULTILINE))


@pytest.mark.timeout(600)
def test_shaped_node_is_drained_then_unshaped_nothing_is(cluster, tmp_path):
    runs = fleet_runs(cluster, tmp_path / "shaped")
    drain = tmp_path / "drain.txt"
    r = run_commbench("triage", *runs, "--drain", drain)
    assert r.returncode == 1, r.stdout + r.stderr
    assert drained_in(r.stdout) == {SLOW_NODE}, r.stdout
    assert drain.read_text() == f"{SLOW_NODE}\n"
    assert f"drain (1): {SLOW_NODE}" in r.stdout

    reshape(cluster, SLOW_NODE, RATE_BPS)  # the same cluster, every node alike
    try:
        for i in range(3):
            runs = fleet_runs(cluster, tmp_path / f"unshaped{i}")
            r = run_commbench("triage", *runs, "--drain", drain)
            assert r.returncode == 0, r.stdout + r.stderr
            assert drain.read_text() == "" and "drain (0): none" in r.stdout
    finally:
        reshape(cluster, SLOW_NODE, RATE_BPS / 3)


@pytest.mark.timeout(400)
def test_find_names_the_node_in_fewer_rounds_than_all_pairs(cluster, tmp_path):
    options = cluster.mpirun_options(1)
    options[options.index("-n") + 1] = "{n}"
    options[options.index("--host") + 1] = "{hosts}"
    template = shlex.join(cluster.head_argv([mpiexec(), *options]))
    drain = tmp_path / "drain.txt"
    r = run_commbench("triage", "--find", f"node[0-{NODES - 1}]", "--launch", template,
                      "--out", tmp_path / "find", "--drain", drain,
                      "--run-args", "--budget 0.3 --min-samples 8", timeout=360)
    assert r.returncode == 1, r.stdout + r.stderr
    assert drain.read_text() == f"{SLOW_NODE}\n"
    rounds = int(re.search(r"^rounds: (\d+) ", r.stdout, re.MULTILINE).group(1))
    assert rounds < NODES - 1, r.stdout  # all pairs: N - 1 rounds of N/2 pairs
