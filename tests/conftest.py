import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def commbench_env(**extra):
    env = dict(os.environ)
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_rmaps_base_oversubscribe": "1", "PYTHONPATH": str(ROOT)})
    env.pop("COMMBENCH_INJECT", None)
    env.update(extra)
    return env


def run_commbench(*args, timeout=120, env=None, cwd=None):
    """Run the commbench CLI in a subprocess; a hang fails the test instead of stalling CI."""
    return subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env or commbench_env(), cwd=cwd)


def mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def have_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return mpiexec() is not None


needs_mpi = pytest.mark.skipif(not have_mpi(), reason="mpi4py and mpiexec not installed")

# Fast sampling settings so SPMD tests take seconds, not minutes.
QUICK = ["--launches", "1", "--repeats", "1", "--budget", "0.05", "--min-samples", "5", "--sample-time", "0.0002", "--no-noise", "--no-ceilings", "-q"]


# Multi-node tests time a shaped network; other CPU load on 2 cores distorts that, so they run
# after every other test (and CI runs them alone: `pytest -m multinode`).
def pytest_configure(config):
    config.addinivalue_line("markers", "multinode: emulated-cluster test (root, network "
                            "namespaces); runs last")
    config.addinivalue_line("markers", "slurm: runs under a real Slurm on the emulated cluster "
                            "(root, Debian's slurmctld/slurmd/slurm-client/libpmix-dev)")


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker("multinode") is not None)  # stable
