"""Every op's program and expected result on real ranks, in one mpiexec job per rank count
(tests/spmd_ops.py runs inside the ranks): the semantics the full `commbench run` tests need
not repeat."""
import importlib.util
import re
import subprocess
import sys

import pytest

from bench.ops import OPS
from tests.conftest import ROOT, commbench_env, mpiexec, needs_mpi

pytestmark = needs_mpi
SCRIPT = ROOT / "tests" / "spmd_ops.py"


def spmd_ops(nranks, *args, timeout=120, **env):
    """Run the script in one job of `nranks` ranks, set up as commbench's own launcher does on
    a machine with fewer cores: idle ranks yield, one OpenMP thread per rank."""
    argv = [mpiexec(), "-n", str(nranks), "--oversubscribe", "--mca", "mpi_yield_when_idle", "1",
            sys.executable, str(SCRIPT), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=commbench_env(OMP_NUM_THREADS="1", **env), cwd=ROOT)


def tally(stdout):
    found = re.search(r"^(\d+) passed, (\d+) failed", stdout, re.M)
    assert found, stdout
    return int(found[1]), int(found[2])


@pytest.mark.parametrize("nranks", [2, 4])
def test_every_op_gives_the_expected_result(nranks):
    r = spmd_ops(nranks)
    assert r.returncode == 0, r.stdout + r.stderr
    passed, failed = tally(r.stdout)
    assert failed == 0 and "FAIL" not in r.stdout and passed > 0
    backends = ["mpi", "gloo"] if importlib.util.find_spec("torch") else ["mpi"]
    assert f"on {nranks} ranks ({', '.join(backends)})" in r.stdout
    runnable = {name for name, op in OPS.items() if op.rank_problem(nranks) is None}
    for backend in backends:  # every op the rank count allows, none skipped on these backends
        checked = re.search(rf"^{backend}: checking (.*)$", r.stdout, re.M)
        assert checked and set(checked[1].split(", ")) == runnable, r.stdout


def test_a_wrong_element_is_reported():
    """The check can fail: the script corrupts one element of rank 1's allgather result."""
    r = spmd_ops(2, "--backends", "mpi", "--ops", "allgather,allreduce",
                 COMMBENCH_SPMD_CORRUPT="allgather:1")
    assert r.returncode != 0
    fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert fails and all(re.match(r"FAIL mpi allgather \w+ \d+ B after \d calls?: rank 1: 1 wrong "
                                  r"element$", line) for line in fails), r.stdout
    passed, failed = tally(r.stdout)
    assert failed == len(fails) and passed > 0  # allreduce's checks still pass
